"""The models volume: storage the non-root trainer can write on a fresh one-node cluster, and
the ReadWriteMany variant for clusters of several nodes, kept equal but for access mode and
class.

Why no hostPath PersistentVolume: hostPath gets no ownership management (fsGroup does not
apply), kubelet creates a DirectoryOrCreate path root-owned 0755, and the namespace's
`restricted` pod security level refuses a root init container that could chown it. The
default StorageClass of kind and k3s (rancher.io/local-path) and of minikube
(k8s.io/minikube-hostpath) creates every volume directory with mode 0777 instead.
"""

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
RWX_VARIANT = ROOT / "k8s/storage/10-model-storage-rwx.yaml"
NON_ROOT_UID = 10001


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def all_k8s_objects() -> list[tuple[Path, dict[str, Any]]]:
    """Every object under k8s/, subfolders (alternatives not applied by default) included."""
    return [
        (path, doc) for path in sorted((ROOT / "k8s").rglob("*.yaml")) for doc in documents(path)
    ]


def default_objects() -> list[dict[str, Any]]:
    """What `kubectl apply -f k8s/` applies: the files directly in k8s/."""
    return [doc for path in sorted((ROOT / "k8s").glob("*.yaml")) for doc in documents(path)]


def models_claim(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (claim,) = [
        obj
        for obj in objects
        if obj["kind"] == "PersistentVolumeClaim" and obj["metadata"]["name"] == "mnist-models"
    ]
    return claim


def test_no_hostpath_volume_anywhere() -> None:
    for path, obj in all_k8s_objects():
        assert obj["kind"] != "PersistentVolume", f"{path.name}: a static PersistentVolume"
        assert "hostPath" not in yaml.safe_dump(obj), f"{path.name} {obj['kind']} uses hostPath"


def test_default_claim_is_provisioned_by_the_default_storage_class_read_write_once() -> None:
    spec = models_claim(default_objects())["spec"]
    # The cluster's default class: "standard" on kind and minikube, "local-path" on k3s.
    assert "storageClassName" not in spec and "volumeName" not in spec and "selector" not in spec
    # local-path provisions ReadWriteOnce only; on one node every pod shares it.
    assert spec["accessModes"] == ["ReadWriteOnce"]
    assert spec["resources"]["requests"]["storage"] == "1Gi"


def test_rwx_variant_is_the_same_claim_on_read_write_many_storage() -> None:
    (variant,) = documents(RWX_VARIANT)
    default = models_claim(default_objects())
    assert variant["kind"] == "PersistentVolumeClaim"
    assert variant["metadata"] == default["metadata"]
    assert variant["spec"]["accessModes"] == ["ReadWriteMany"]
    assert variant["spec"]["storageClassName"]  # a class name to fill in
    assert variant["spec"]["resources"] == default["spec"]["resources"]
    # A subfolder: `kubectl apply -f k8s/` does not apply it next to the default claim.
    assert RWX_VARIANT.parent != ROOT / "k8s"


def test_every_pod_using_the_claim_runs_as_the_uid_the_volume_lets_write() -> None:
    for obj in default_objects():
        if obj["kind"] not in ("Deployment", "Job"):
            continue
        spec = obj["spec"]["template"]["spec"]
        claims = [v for v in spec.get("volumes", []) if "persistentVolumeClaim" in v]
        if not claims:
            continue
        assert spec["securityContext"]["runAsUser"] == NON_ROOT_UID, obj["metadata"]["name"]
        # No init container: a root chown is what the restricted namespace forbids.
        assert "initContainers" not in spec, obj["metadata"]["name"]
