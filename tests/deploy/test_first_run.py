"""A first run on the targets no test here can start: a one-node cluster of 4 CPUs and 8 GB
(kind, minikube, k3s) and Docker Compose. Why each rule holds there is argued from
Kubernetes', k3s' and Docker's documentation and sources in docs/deployment.md ("First run");
these tests pin the files to those rules."""

import contextlib
import socketserver
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.deploy.files import ROOT, compose, documents, named, of_kind, pod_template

# Allocatable CPU on a 4-CPU node once the system pods' requests are counted: kind's are the
# largest (kube-apiserver 250m, controller-manager 200m, scheduler 100m, etcd 100m, CoreDNS
# 2 x 100m, kindnet 100m); minikube's come to 750m, k3s' to about 200m.
CPU_FOR_THE_STACK = 4.0 - 0.95


def cpu(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def requested_cpu(obj: dict[str, Any]) -> float:
    containers = pod_template(obj)["spec"]["containers"]
    return sum(cpu(c["resources"]["requests"]["cpu"]) for c in containers)


def test_training_job_and_serving_at_min_replicas_fit_a_4_cpu_node() -> None:
    """The scheduler places a pod only where the requests of the pods already there leave
    room (it never over-commits allocatable CPU): the Job and both Deployments at their HPA's
    minReplicas start together on a fresh cluster."""
    job = requested_cpu(named("Job", "mnist-training"))
    serving = sum(
        requested_cpu(named("Deployment", hpa["spec"]["scaleTargetRef"]["name"]))
        * hpa["spec"]["minReplicas"]
        for hpa in of_kind("HorizontalPodAutoscaler")
    )

    assert job <= 1.0
    assert requested_cpu(named("CronJob", "mnist-retraining")) == job
    assert job + serving <= min(3.25, CPU_FOR_THE_STACK), (job, serving)


def test_api_keys_never_live_in_k8s_and_the_gateway_starts_without_them() -> None:
    """`kubectl apply -f k8s/` would write a Secret's value over the operator's; one made by
    `kubectl create secret` is never touched by it (apply deletes nothing it does not list)."""
    every_file = sorted((ROOT / "k8s").rglob("*.yaml"))
    assert not [doc for path in every_file for doc in documents(path) if doc["kind"] == "Secret"]
    (gateway,) = pod_template(named("Deployment", "gateway"))["spec"]["containers"]
    secrets = [source["secretRef"] for source in gateway["envFrom"] if "secretRef" in source]
    assert secrets == [{"name": "gateway-api-keys", "optional": True}]


def test_new_versions_come_from_a_template_that_outlives_the_first_job() -> None:
    """The first Job is deleted a day after it finishes (ttlSecondsAfterFinished), and
    `kubectl create job --from=` takes only a CronJob: a suspended one never runs on its own
    and always holds the pod of a new version, the first Job's without --if-missing."""
    job = named("Job", "mnist-training")
    cron = named("CronJob", "mnist-retraining")
    first, template = pod_template(job), pod_template(cron)
    (first_container,) = first["spec"]["containers"]
    (new_container,) = template["spec"]["containers"]

    assert cron["spec"]["suspend"] is True
    assert "--if-missing" in first_container["args"]
    assert new_container["args"] == [a for a in first_container["args"] if a != "--if-missing"]
    first_spec = {**first["spec"], "containers": [{**first_container, "args": None}]}
    new_spec = {**template["spec"], "containers": [{**new_container, "args": None}]}
    assert new_spec == first_spec
    assert template["metadata"] == first["metadata"]


def test_disruption_budgets_never_block_a_node_drain() -> None:
    """minAvailable equal to the replica count allows no voluntary eviction, so a drain never
    completes; the HPA changes the count, so each budget is a number of pods allowed down."""
    budgets = {
        pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]: pdb["spec"]
        for pdb in of_kind("PodDisruptionBudget")
    }
    assert set(budgets) == {"gateway", "tf-serving"}
    for spec in budgets.values():
        assert "minAvailable" not in spec and spec["maxUnavailable"] >= 1


def test_load_balancer_port_is_free_on_k3s_and_the_same_as_compose() -> None:
    """k3s' Traefik holds ports 80 and 443 through ServiceLB's host ports; another
    LoadBalancer on them stays pending."""
    service = named("Service", "gateway")
    (port,) = service["spec"]["ports"]

    assert service["spec"]["type"] == "LoadBalancer"
    assert port["port"] not in (80, 443)
    assert compose()["services"]["gateway"]["ports"] == [f"{port['port']}:8000"]


def test_tf_serving_runs_only_where_its_amd64_image_runs() -> None:
    spec = pod_template(named("Deployment", "tf-serving"))["spec"]
    assert spec["nodeSelector"] == {"kubernetes.io/arch": "amd64"}
    assert compose()["services"]["tf-serving"]["platform"] == "linux/amd64"


# --- Health checks, run as the container runs them ----------------------------------------


def health_commands() -> dict[str, str]:
    compose_test = compose()["services"]["tf-serving"]["healthcheck"]["test"]
    (container,) = pod_template(named("Deployment", "tf-serving"))["spec"]["containers"]
    probe = container["readinessProbe"]["exec"]["command"]
    assert compose_test[:3] == ["CMD", "bash", "-c"] and probe[:2] == ["bash", "-c"]
    return {"compose": compose_test[3], "k8s": probe[2]}


@contextlib.contextmanager
def status_server(body: str) -> Iterator[int]:
    """A server answering every request with TF Serving's status reply, `body`."""

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            self.rfile.readline()
            self.wfile.write(
                b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + body.encode()
            )

    with socketserver.TCPServer(("127.0.0.1", 0), Handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield server.server_address[1]
        finally:
            server.shutdown()


def status_body(state: str, error_code: str = "OK", error_message: str = "") -> str:
    """GET /v1/models/mnist as TF Serving's pretty-printing JSON writer answers it."""
    return (
        '{\n "model_version_status": [\n  {\n   "version": "2",\n'
        f'   "state": "{state}",\n   "status": {{\n    "error_code": "{error_code}",\n'
        f'    "error_message": "{error_message}"\n   }}\n  }}\n ]\n}}'
    )


@pytest.mark.parametrize(
    ("body", "healthy"),
    [
        pytest.param(status_body("AVAILABLE"), True, id="available"),
        pytest.param(status_body("LOADING"), False, id="loading"),
        pytest.param(status_body("LOADING", "UNAVAILABLE"), False, id="unavailable-code"),
        pytest.param(
            status_body("END", "UNKNOWN", 'the path was \\"AVAILABLE\\" once'),
            False,
            id="word-in-a-message",
        ),
    ],
)
@pytest.mark.parametrize("where", ["compose", "k8s"])
def test_tf_serving_health_check_passes_only_while_a_version_is_available(
    where: str, body: str, healthy: bool
) -> None:
    command = health_commands()[where]
    assert "/dev/tcp/127.0.0.1/8501" in command
    with status_server(body) as port:
        result = subprocess.run(
            [
                "bash",
                "-c",
                command.replace("/dev/tcp/127.0.0.1/8501", f"/dev/tcp/127.0.0.1/{port}"),
            ],
            capture_output=True,
            timeout=10,
        )
    assert (result.returncode == 0) is healthy, result.stderr


def test_compose_keeps_feedback_within_bounds_on_a_machine_others_reach() -> None:
    """Compose publishes the gateway on every interface and turns feedback on; each
    correction is a 28x28 PNG and one JSON line, two 4 KiB blocks on most file systems."""
    environment = compose()["services"]["gateway"]["environment"]
    setting = environment["GATEWAY_FEEDBACK_MAX_ITEMS"]
    default = setting.removeprefix("${GATEWAY_FEEDBACK_MAX_ITEMS:-").removesuffix("}")

    assert environment["GATEWAY_FEEDBACK_DIR"]
    assert int(default) * 8 * 1024 <= 100 * 1024 * 1024


def test_tf_serving_pods_wait_out_a_first_full_training_on_a_slow_node() -> None:
    """TF Serving opens its ports only once a version has loaded, so until the training Job
    publishes one the startup probe fails: it must outlast the full recipe on a slow node
    (11 minutes at 2 CPUs measured on the slower of two machines of one kind) with the trainer
    image's pull and a margin, or the kubelet restarts the pods before the first model."""
    (container,) = pod_template(named("Deployment", "tf-serving"))["spec"]["containers"]
    probe = container["startupProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] >= 45 * 60
