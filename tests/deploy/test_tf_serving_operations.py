"""Running TF Serving: flags that let it start with version labels, replica counts left to
the HPAs, compose ports and config mounts, metrics scraping through the NetworkPolicy, and one
image tag whose TensorFlow the export check uses. (The canary procedure's order is the
rollout tool's, tested in tests/serving/test_rollout.py.)
"""

import re
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.files import ROOT, k8s_objects, named

LABELS_FLAG = "--allow_version_labels_for_unavailable_models=true"
TAG = re.compile(r"tensorflow/serving:([0-9][\w.-]*)")


def tf_serving_service() -> dict[str, Any]:
    service: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"][
        "tf-serving"
    ]
    return service


def tf_serving_container() -> dict[str, Any]:
    container: dict[str, Any] = named("Deployment", "tf-serving")["spec"]["template"]["spec"][
        "containers"
    ][0]
    return container


# --- Version labels ------------------------------------------------------------------------


def test_tf_serving_starts_with_labels_of_versions_still_loading() -> None:
    """server_core.cc checks version_labels before it loads a new config's versions; without
    this flag a starting server refuses a models.config with labels and exits."""
    assert LABELS_FLAG in (ROOT / "serving/tf_serving_flags.txt").read_text().split()
    assert LABELS_FLAG in tf_serving_service()["command"]
    assert LABELS_FLAG in tf_serving_container()["args"]


# --- Replicas belong to the HPAs -----------------------------------------------------------


def test_deployments_scaled_by_an_hpa_set_no_replicas() -> None:
    targets = {
        hpa["spec"]["scaleTargetRef"]["name"]
        for hpa in k8s_objects()
        if hpa["kind"] == "HorizontalPodAutoscaler"
    }
    assert targets == {"gateway", "tf-serving"}
    for name in targets:
        assert "replicas" not in named("Deployment", name)["spec"], name


# --- Compose -------------------------------------------------------------------------------


def _published(port: Any) -> tuple[str, str]:
    """(host address, container port) of a compose port entry, short or long syntax."""
    if isinstance(port, dict):
        return str(port.get("host_ip", "")), str(port["target"])
    parts = str(port).rsplit(":", 2)
    return (parts[0] if len(parts) == 3 else ""), parts[-1]


def test_compose_publishes_tf_serving_on_loopback_only() -> None:
    """TF Serving has no authentication; the gateway reaches it as tf-serving:8501."""
    ports = tf_serving_service().get("ports", [])
    for port in ports:
        host, _ = _published(port)
        assert host == "127.0.0.1", port


def test_compose_mounts_the_config_folder_read_only() -> None:
    """A single-file bind mount keeps the old inode when an editor replaces the file; `z`
    relabels the folder on SELinux hosts, where the container could not read it otherwise."""
    volumes = tf_serving_service()["volumes"]
    assert "./serving:/etc/tf-serving:ro,z" in volumes
    for volume in volumes:
        source = str(volume).split(":")[0]
        if source.startswith("."):
            assert (ROOT / source).is_dir(), f"{volume}: bind-mount folders, not files"


# --- Metrics scraping ----------------------------------------------------------------------


def test_network_policy_admits_prometheus_on_the_rest_port_only() -> None:
    annotations = named("Deployment", "tf-serving")["spec"]["template"]["metadata"]["annotations"]
    ports = {p["name"]: p["containerPort"] for p in tf_serving_container()["ports"]}
    assert int(annotations["prometheus.io/port"]) == ports["rest"]
    rules = named("NetworkPolicy", "tf-serving-ingress")["spec"]["ingress"]
    scrapers = [
        rule
        for rule in rules
        if any(
            peer.get("podSelector", {}).get("matchLabels")
            == {"app.kubernetes.io/name": "prometheus"}
            for peer in rule["from"]
        )
    ]
    assert len(scrapers) == 1
    (scraper,) = scrapers
    assert scraper["ports"] == [{"port": "rest", "protocol": "TCP"}]
    (peer,) = scraper["from"]
    assert peer["namespaceSelector"] == {}  # Prometheus usually runs in its own namespace


# --- One image tag, and the TensorFlow that checks exports against it ----------------------


def _tags_in(path: Path) -> set[str]:
    return set(TAG.findall(path.read_text()))


def test_one_tf_serving_tag_everywhere_and_the_export_check_uses_its_tensorflow() -> None:
    places = [ROOT / "docker-compose.yml", *sorted((ROOT / "k8s").rglob("*.yaml"))]
    tags = {path.relative_to(ROOT).as_posix(): _tags_in(path) for path in places}
    found = set().union(*tags.values())
    assert len(found) == 1, tags
    (tag,) = found
    assert tags["docker-compose.yml"] == {tag}
    assert tags["k8s/30-tf-serving.yaml"] == {tag}
    # The image's TensorFlow is its tag's version; the check script installs exactly that.
    pins = re.findall(
        r"^tensorflow-cpu==(\S+)$",
        (ROOT / "requirements-serving-image-tf.txt").read_text(),
        flags=re.MULTILINE,
    )
    assert pins == [tag]
