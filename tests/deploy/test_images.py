"""The images build where users build them: each platform's training requirements resolve
to wheels PyPI has, and the local model server's image swaps in for tensorflow/serving only."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from tests.deploy.files import ROOT, compose

# glibc 2.36 (Debian bookworm) runs wheels tagged for any manylinux up to it.
MANYLINUX = [f"manylinux_2_{minor}" for minor in range(17, 37)] + ["manylinux2014"]


def requirements_for(machine: str, path: Path) -> list[str]:
    """The pins of a requirements file (its -r includes too) that apply on `machine`."""
    pins = []
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r "):
            pins += requirements_for(machine, path.parent / line[3:].strip())
        elif line:
            requirement = Requirement(line)
            marker = requirement.marker
            if marker is None or marker.evaluate({"platform_machine": machine}):
                pins.append(str(requirement).split(";")[0])
    return pins


@pytest.mark.slow
@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_the_trainer_image_requirements_resolve_on_amd64_and_arm64(
    machine: str, tmp_path: Path
) -> None:
    pins = requirements_for(machine, ROOT / "requirements-training.txt")
    platforms = [arg for tag in MANYLINUX for arg in ("--platform", f"{tag}_{machine}")]
    report = tmp_path / "report.json"
    resolved = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
         "--target", str(tmp_path / "target"), "--only-binary=:all:", *platforms,
         "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
         "--report", str(report), *pins],
        capture_output=True, text=True, timeout=300,
    )
    assert resolved.returncode == 0, resolved.stderr[-2000:]
    wheels = {item["metadata"]["name"].lower().replace("_", "-"): item["download_info"]["url"]
              for item in json.loads(report.read_text())["install"]}
    tensorflow = "tensorflow-cpu" if machine == "x86_64" else "tensorflow"
    assert machine in wheels[tensorflow]


class _ComposeLoader(yaml.SafeLoader):
    """Compose's YAML: `!reset` drops what the file below set."""


_ComposeLoader.add_constructor("!reset", lambda loader, node: None)


def test_the_local_server_override_swaps_the_model_servers_image_and_nothing_else() -> None:
    override = yaml.load((ROOT / "compose.local-server.yml").read_text(), _ComposeLoader)
    assert set(override) == {"services"}
    assert set(override["services"]) == {"tf-serving"}
    swapped = override["services"]["tf-serving"]
    # The image, how it is built, and no amd64 platform: the local server is built natively.
    assert set(swapped) == {"build", "image", "platform"}
    assert swapped["platform"] is None
    assert compose()["services"]["tf-serving"]["platform"] == "linux/amd64"
