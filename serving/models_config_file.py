"""A models.config file as the rollout command reads and rewrites it.

It is parsed with protobuf's text format, as TF Serving parses it. Rewriting changes one
model's version policy and labels and nothing else: the text of those fields is replaced in
place, so every comment and every other field of the file stays as it was written. The file
is replaced atomically, so a server polling it reads the old text or the new, never a mix.
"""

import contextlib
import os
import re
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

# Protobuf messages are untyped here (no stubs for tensorflow_serving).
Proto = Any
MANAGED_FIELDS = ("model_version_policy", "version_labels")


def parse_config(text: str, where: object = "models.config") -> Proto:
    """Parse a models.config's text.

    Raises:
        ValueError: the text does not parse, or has no model_config_list.
    """
    try:
        config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    except text_format.ParseError as exc:
        raise ValueError(f"{where} does not parse as a ModelServerConfig: {exc}") from exc
    if not config.HasField("model_config_list"):
        raise ValueError(f"{where} has no model_config_list")
    return config


def read_config(path: Path) -> Proto:
    return parse_config(path.read_text(), path)


def model_entry(config: Proto, name: str) -> Proto:
    for entry in config.model_config_list.config:
        if entry.name == name:
            return entry
    raise ValueError(f"models.config has no model named {name!r}")


def specific_versions(entry: Proto) -> set[int] | None:
    """The versions of a `specific` policy, None for `latest` or `all`."""
    policy = entry.model_version_policy
    if policy.WhichOneof("policy_choice") != "specific":
        return None
    return {int(version) for version in policy.specific.versions}


def labels_of(entry: Proto) -> dict[str, int]:
    return {str(label): int(version) for label, version in entry.version_labels.items()}


def describe_policy(entry: Proto) -> str:
    policy = entry.model_version_policy
    which = policy.WhichOneof("policy_choice")
    if which == "specific":
        return "specific " + " ".join(str(v) for v in sorted(specific_versions(entry) or ()))
    if which == "all":
        return "all"
    # TF Serving's default policy is latest 1.
    return f"latest {max(1, policy.latest.num_versions) if which else 1}"


def describe_labels(labels: dict[str, int]) -> str:
    if not labels:
        return "none"
    return ", ".join(f"{label} -> {version}" for label, version in sorted(labels.items()))


def describe_versions(versions: Iterable[int]) -> str:
    listed = sorted(versions)
    return ("version " if len(listed) == 1 else "versions ") + " ".join(str(v) for v in listed)


def with_changes(config: Proto, name: str, versions: set[int], labels: dict[str, int]) -> Proto:
    """A copy of `config` whose model `name` has a `specific` policy and these labels."""
    changed = model_server_config_pb2.ModelServerConfig()
    changed.CopyFrom(config)
    entry = model_entry(changed, name)
    entry.model_version_policy.Clear()
    entry.model_version_policy.specific.versions.extend(sorted(versions))
    entry.ClearField("version_labels")
    for label, version in labels.items():
        entry.version_labels[label] = version
    return changed


def rewritten(text: str, name: str, versions: set[int], labels: dict[str, int]) -> str:
    """`text` with model `name`'s policy set to these versions and its labels to these.

    Only the text of the model's model_version_policy and version_labels fields changes
    (comments inside those fields go with them); everything else is kept byte for byte.

    Raises:
        ValueError: the text does not parse, or has no such model.
    """
    expected = with_changes(parse_config(text), name, versions, labels)
    config = _field(_fields(text, 0, len(text)), "model_config_list")
    entries = [f for f in _fields(text, config.body_start, config.body_end) if f.name == "config"]
    for entry in entries:
        fields = _fields(text, entry.body_start, entry.body_end)
        model_name = next((f for f in fields if f.name == "name"), None)
        if model_name is None or _unquote(text[model_name.value_start : model_name.end]) != name:
            continue
        managed = [f for f in fields if f.name in MANAGED_FIELDS]
        indent = _indent(text, fields[0].start) if fields else ""
        block = "".join(f"{indent}{line}\n" for line in _managed_text(versions, labels))
        if managed:
            at = _line_start(text, managed[0].start)
        else:
            at = _line_start(text, entry.body_end)
        kept = [text[:at]]
        position = at
        for field in managed:
            start, end = _line_start(text, field.start), _line_end(text, field.end)
            kept.append(text[position:start])
            position = end
        result = "".join(kept) + block + text[position:]
        if parse_config(result) != expected:  # a layout this editor does not follow
            raise ValueError("the rewritten models.config does not say what was asked")
        return result
    raise ValueError(f"models.config has no model named {name!r}")


def _managed_text(versions: set[int], labels: dict[str, int]) -> list[str]:
    lines = ["model_version_policy {", "  specific {"]
    lines += [f"    versions: {version}" for version in sorted(versions)]
    lines += ["  }", "}"]
    for label, version in sorted(labels.items()):
        lines += ["version_labels {", f'  key: "{label}"', f"  value: {version}", "}"]
    return lines


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` in one rename, keeping its permission bits.

    The temporary file sits in the same folder so the rename is atomic: a server polling
    the file reads the old text or the new, never a mix. gateway/feedback.py keeps a writer
    of its own: the gateway image holds contract.py and gateway/, not serving/.
    """
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o644
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        # mkstemp makes the file 0600: a server running as another user (the TF Serving
        # container) must still be able to read it.
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


# --- Where the fields are in the text ------------------------------------------------------


class _Field:
    """A field of a text-format message: where it starts and ends, and its value or body."""

    __slots__ = ("name", "start", "end", "value_start", "body_start", "body_end")

    def __init__(self, name: str, start: int, value_start: int, end: int, body: bool) -> None:
        self.name = name
        self.start = start
        self.end = end
        self.value_start = value_start
        self.body_start = value_start + 1 if body else value_start
        self.body_end = end - 1 if body else end


_SPACE = re.compile(r"(?:\s+|#[^\n]*)*")
_NAME = re.compile(r"\[[^\]]*\]|[A-Za-z_][A-Za-z0-9_.]*")
_STRING = re.compile(r"""(?:"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')""")
_TOKEN = re.compile(r"[^\s{}<>\[\]:;,#\"']+")
_CLOSE = {"{": "}", "<": ">", "[": "]"}


def _skip(text: str, position: int) -> int:
    match = _SPACE.match(text, position)
    return match.end() if match else position


def _fields(text: str, start: int, end: int) -> list[_Field]:
    """The fields directly inside text[start:end], in order."""
    fields = []
    position = _skip(text, start)
    while position < end:
        name = _NAME.match(text, position)
        if name is None:
            raise ValueError(f"models.config: unexpected text at offset {position}")
        position = _skip(text, name.end())
        if text.startswith(":", position):
            position = _skip(text, position + 1)
        value_start = position
        if text[position] in "{<":
            position = _close(text, position)
            body = True
        else:
            position = _scalar_end(text, position)
            body = False
        fields.append(_Field(name.group(), name.start(), value_start, position, body))
        position = _skip(text, position)
        if position < end and text[position] in ";,":
            position = _skip(text, position + 1)
    return fields


def _close(text: str, position: int) -> int:
    """The offset after the bracket that closes the one at `position`."""
    stack = [_CLOSE[text[position]]]
    position += 1
    while stack:
        position = _skip(text, position)
        char = text[position]
        if char in "\"'":
            position = _STRING.match(text, position).end()  # type: ignore[union-attr]
        elif char in _CLOSE:
            stack.append(_CLOSE[char])
            position += 1
        elif char == stack[-1]:
            stack.pop()
            position += 1
        else:
            position += 1
    return position


def _scalar_end(text: str, position: int) -> int:
    if text[position] == "[":
        return _close(text, position)
    if text[position] in "\"'":
        end = _STRING.match(text, position).end()  # type: ignore[union-attr]
        while True:  # adjacent strings concatenate
            after = _skip(text, end)
            if after >= len(text) or text[after] not in "\"'":
                return end
            end = _STRING.match(text, after).end()  # type: ignore[union-attr]
    token = _TOKEN.match(text, position)
    if token is None:
        raise ValueError(f"models.config: no value at offset {position}")
    return token.end()


def _field(fields: list[_Field], name: str) -> _Field:
    for field in fields:
        if field.name == name:
            return field
    raise ValueError(f"models.config has no {name}")


def _unquote(value: str) -> str:
    return "".join(part[1:-1] for part in _STRING.findall(value))


def _line_start(text: str, position: int) -> int:
    """`position`, or the start of its line when only blanks precede it there."""
    start = text.rfind("\n", 0, position) + 1
    return start if not text[start:position].strip() else position


def _line_end(text: str, position: int) -> int:
    """After the newline ending `position`'s line when only blanks follow it there."""
    end = text.find("\n", position)
    end = len(text) if end < 0 else end + 1
    return end if not text[position:end].strip() else position


def _indent(text: str, position: int) -> str:
    start = text.rfind("\n", 0, position) + 1
    return text[start:position] if not text[start:position].strip() else ""
