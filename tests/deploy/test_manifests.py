"""What no validator checks: the parts of compose, k8s/ and serving/ agree with each other
and with the code (labels, ports, probes, settings, image tags, TF Serving flags)."""

import re
from pathlib import Path

import pytest

from contract import MODEL_NAME
from gateway.config import Settings
from serving.tf_serving_config import parse_model_server_config, read_batching_parameters
from tests.deploy.files import (
    ROOT,
    compose,
    deployment_config,
    k8s_objects,
    named,
    of_kind,
    pod_specs,
    tf_serving_flags,
)

TF_SERVING_IMAGE = re.compile(r"tensorflow/serving:\d+\.\d+\.\d+$")


def test_k8s_has_no_non_kubernetes_yaml() -> None:
    for obj in k8s_objects():
        assert {"apiVersion", "kind", "metadata"} <= set(obj)


def test_k8s_files_apply_in_working_order() -> None:
    names = [p.name for p in sorted((ROOT / "k8s").glob("*.yaml"))]
    assert names[0] == "00-namespace.yaml"
    assert names.index("10-model-storage.yaml") < names.index("20-training-job.yaml")


def test_k8s_selectors_match_pod_labels() -> None:
    deployments = {d["metadata"]["name"]: d for d in of_kind("Deployment")}
    for deployment in deployments.values():
        selector = deployment["spec"]["selector"]["matchLabels"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items()
    for kind in ("Service", "PodDisruptionBudget"):
        for obj in of_kind(kind):
            selector = obj["spec"]["selector"]
            selector = selector.get("matchLabels", selector)
            matches = [
                d
                for d in deployments.values()
                if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
            ]
            assert matches, f"{kind} {obj['metadata']['name']} selects no pods"


def test_k8s_services_and_probes_use_named_ports_that_exist() -> None:
    for name, spec in pod_specs():
        for container in spec["containers"]:
            ports = {p["name"] for p in container.get("ports", [])}
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                handler = container.get(probe, {})
                port = (handler.get("httpGet") or handler.get("tcpSocket") or {}).get("port")
                if port is not None:
                    assert port in ports, f"{name} {probe} port {port}"
    for service in of_kind("Service"):
        (deployment,) = [
            d for d in of_kind("Deployment") if d["metadata"]["name"] == service["metadata"]["name"]
        ]
        ports = {
            p["name"]
            for c in deployment["spec"]["template"]["spec"]["containers"]
            for p in c["ports"]
        }
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports


def test_k8s_hpas_target_existing_deployments() -> None:
    deployments = {d["metadata"]["name"] for d in of_kind("Deployment")}
    hpas = {h["metadata"]["name"]: h for h in of_kind("HorizontalPodAutoscaler")}
    assert set(hpas) == {"gateway", "tf-serving"}
    for hpa in hpas.values():
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"]["name"] in deployments
        assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    gateway = hpas["gateway"]["spec"]
    assert (gateway["minReplicas"], gateway["maxReplicas"]) == (3, 10)
    assert gateway["metrics"][0]["resource"]["target"]["averageUtilization"] == 70


def test_k8s_gateway_matches_the_original_design() -> None:
    deployment = named("Deployment", "gateway")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    # 3 replicas at least: the HPA's floor (the Deployment itself sets none, see below).
    assert named("HorizontalPodAutoscaler", "gateway")["spec"]["minReplicas"] == 3
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert named("Service", "gateway")["spec"]["type"] == "LoadBalancer"


def test_k8s_every_pod_is_locked_down() -> None:
    for name, spec in pod_specs():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] >= 10000, name
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", name
        mounts_needed = set()
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            assert {"requests", "limits"} <= set(container["resources"]), name
            assert not container["image"].endswith(":latest") and ":" in container["image"], name
            mounts_needed |= {m["name"] for m in container.get("volumeMounts", [])}
        assert mounts_needed <= {v["name"] for v in spec.get("volumes", [])}, name


def test_k8s_models_claim_is_read_only_for_readers() -> None:
    claim = named("PersistentVolumeClaim", "mnist-models")
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    for name in ("tf-serving", "gateway"):
        spec = named("Deployment", name)["spec"]["template"]["spec"]
        (models,) = [v for v in spec["volumes"] if v["name"] == "models"]
        assert models["persistentVolumeClaim"] == {"claimName": "mnist-models", "readOnly": True}


def test_k8s_network_policy_admits_only_gateway_and_internal_callers() -> None:
    policy = named("NetworkPolicy", "tf-serving-ingress")
    assert policy["spec"]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "tf-serving"}
    # Two rules: callers (both ports), then metrics scrapers (REST only, tested below).
    assert len(policy["spec"]["ingress"]) == 2
    sources = [peer["podSelector"]["matchLabels"] for peer in policy["spec"]["ingress"][0]["from"]]
    assert sources == [
        {"app.kubernetes.io/name": "gateway"},
        {"mnist.internal/tf-serving-client": "true"},
    ]
    # Every other pod has a policy too: the gateway takes HTTP only, training nothing.
    assert named("NetworkPolicy", "gateway-ingress")["spec"]["ingress"] == [
        {"ports": [{"port": "http", "protocol": "TCP"}]}
    ]
    assert "ingress" not in named("NetworkPolicy", "training-no-ingress")["spec"]


def test_k8s_cors_lists_origins_never_wildcard() -> None:
    origins = named("ConfigMap", "gateway-settings")["data"]["GATEWAY_CORS_ALLOW_ORIGINS"]
    assert origins and "*" not in origins


def _gateway_env_names() -> set[str]:
    names = set(named("ConfigMap", "gateway-settings")["data"])
    names |= set(compose()["services"]["gateway"]["environment"])
    return names


def test_every_gateway_variable_set_is_one_the_gateway_reads() -> None:
    known = {f"GATEWAY_{field.upper()}" for field in Settings.model_fields}
    assert _gateway_env_names() <= known


def test_tf_serving_flags_agree_across_compose_k8s_and_serving() -> None:
    container = named("Deployment", "tf-serving")["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == tf_serving_flags()
    assert compose()["services"]["tf-serving"]["command"] == tf_serving_flags()


def test_tf_serving_config_files_are_the_same_everywhere() -> None:
    """The same files, but for the version policy and labels of serving/models.config, which
    a compose rollout changes (serving.rollout keeps everything else, heading comments included);
    the ConfigMap's is a fresh deployment's: the newest version, no labels."""
    data = named("ConfigMap", "tf-serving-config")["data"]
    for name in ("batching.config", "monitoring.config"):
        assert data[name] == (ROOT / "serving" / name).read_text(), name
    compose_config = (ROOT / "serving/models.config").read_text()
    assert deployment_config(data["models.config"]) == deployment_config(compose_config)
    (entry,) = parse_model_server_config(data["models.config"]).model_config_list.config
    assert entry.model_version_policy.WhichOneof("policy_choice") == "latest"
    assert not entry.version_labels
    # Compose mounts the folder holding them at the path the flags name.
    assert "./serving:/etc/tf-serving:ro,z" in compose()["services"]["tf-serving"]["volumes"]
    for flag in tf_serving_flags():
        if flag.endswith(".config"):
            path = flag.split("=", 1)[1]
            assert path.startswith("/etc/tf-serving/"), flag
            assert (ROOT / "serving" / path.removeprefix("/etc/tf-serving/")).is_file(), flag


def test_gateway_batch_limit_is_what_tf_serving_accepts_in_one_request() -> None:
    """batching.config decides: TF Serving refuses a request of more rows than its
    max_batch_size, split or not (shared_batch_scheduler.h, ValidateBatchTaskQueueCapacity),
    and the gateway sends a whole /predict/batch in one request."""
    accepted = read_batching_parameters(ROOT / "serving/batching.config").max_batch_size
    limits = {
        "gateway default": Settings.model_fields["max_batch"].default,
        "compose": int(compose()["services"]["gateway"]["environment"]["GATEWAY_MAX_BATCH"]),
        "k8s": int(named("ConfigMap", "gateway-settings")["data"]["GATEWAY_MAX_BATCH"]),
    }
    assert limits == dict.fromkeys(limits, accepted)


def test_model_name_paths_ports_and_tags_agree() -> None:
    services = compose()["services"]
    images = {services["tf-serving"]["image"]}
    images |= {
        c["image"] for _, spec in pod_specs() for c in spec["containers"] if "serving" in c["image"]
    }
    assert len(images) == 1 and TF_SERVING_IMAGE.match(images.pop())
    assert (
        services["gateway"]["image"]
        == named("Deployment", "gateway")["spec"]["template"]["spec"]["containers"][0]["image"]
    )
    assert (
        services["trainer"]["image"]
        == named("Job", "mnist-training")["spec"]["template"]["spec"]["containers"][0]["image"]
    )
    assert f'name: "{MODEL_NAME}"' in (ROOT / "serving/models.config").read_text()
    assert f'base_path: "/models/{MODEL_NAME}"' in (ROOT / "serving/models.config").read_text()
    assert "--rest_api_port=8501" in tf_serving_flags() and "--port=8500" in tf_serving_flags()
    assert services["gateway"]["ports"] == ["8000:8000"]
    assert services["gateway"]["environment"]["GATEWAY_TF_SERVING_URL"] == "http://tf-serving:8501"
    settings = named("ConfigMap", "gateway-settings")["data"]
    assert settings["GATEWAY_TF_SERVING_URL"].endswith("tf-serving.mnist.svc.cluster.local:8501")


def test_compose_start_order_and_health_checks() -> None:
    services = compose()["services"]
    assert services["tf-serving"]["depends_on"] == {
        "trainer": {"condition": "service_completed_successfully"}
    }
    assert services["gateway"]["depends_on"] == {"tf-serving": {"condition": "service_healthy"}}
    assert "AVAILABLE" in " ".join(services["tf-serving"]["healthcheck"]["test"])
    assert (
        "/models/mnist" in services["trainer"]["command"]
        and "--if-missing" in services["trainer"]["command"]
    )
    assert "models:/models:ro" in services["tf-serving"]["volumes"]


@pytest.mark.parametrize("dockerfile", ["Dockerfile.gateway", "training/Dockerfile"])
def test_dockerfiles_run_as_numeric_non_root_user(dockerfile: str) -> None:
    text = (ROOT / dockerfile).read_text()
    users = re.findall(r"^USER (\d+)", text, flags=re.MULTILINE)
    assert users and int(users[-1]) >= 10000


def _instructions(path: Path) -> list[str]:
    lines = path.read_text().lower().splitlines()
    return [line for line in lines if line.strip() and not line.lstrip().startswith("#")]


def test_gateway_image_and_requirements_have_no_tensorflow() -> None:
    for path in (ROOT / "Dockerfile.gateway", ROOT / "requirements-gateway.txt"):
        for line in _instructions(path):
            assert "tensorflow" not in line and "keras" not in line, line
    for line in _instructions(ROOT / "requirements-gateway.txt"):
        assert "==" in line, line
