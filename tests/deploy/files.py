"""The deployment files as the tests read them: compose, the k8s objects `kubectl apply -f k8s/`
applies, and TF Serving's flags."""

from pathlib import Path
from typing import Any

import yaml

from serving.tf_serving_config import parse_model_server_config

ROOT = Path(__file__).resolve().parents[2]


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def k8s_objects() -> list[dict[str, Any]]:
    """What `kubectl apply -f k8s/` applies: the files directly in k8s/, not its subfolders."""
    return [doc for path in sorted((ROOT / "k8s").glob("*.yaml")) for doc in documents(path)]


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [obj for obj in k8s_objects() if obj["kind"] == kind]


def named(kind: str, name: str) -> dict[str, Any]:
    (found,) = [obj for obj in of_kind(kind) if obj["metadata"]["name"] == name]
    return found


def pod_template(obj: dict[str, Any]) -> dict[str, Any]:
    """The pod template of a Deployment, Job or CronJob."""
    spec = obj["spec"]
    if obj["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    template: dict[str, Any] = spec["template"]
    return template


def pod_specs() -> list[tuple[str, dict[str, Any]]]:
    return [
        (obj["metadata"]["name"], pod_template(obj)["spec"])
        for obj in k8s_objects()
        if obj["kind"] in ("Deployment", "Job", "CronJob")
    ]


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def tf_serving_flags() -> list[str]:
    return (ROOT / "serving/tf_serving_flags.txt").read_text().split()


def deployment_config(text: str) -> tuple[object, list[str]]:
    """A models.config less what a rollout changes (each model's version policy and labels),
    and its comments: what the compose folder's and the ConfigMap's copies must share."""
    config = parse_model_server_config(text)
    for entry in config.model_config_list.config:
        entry.ClearField("model_version_policy")
        entry.ClearField("version_labels")
    comments = [line.strip() for line in text.splitlines() if line.strip().startswith("#")]
    return config, comments
