"""Roll a model version out by editing models.config in the order TF Serving accepts.

`python -m serving.rollout canary 3` loads version 3 beside the stable one, waits until the
model server reports it AVAILABLE, then points the `canary` label at it; `promote`,
`rollback` and `retire` finish the job. Before a label moves, the target is checked
AVAILABLE through the REST status API, and the file is replaced atomically, so TF Serving
and `python -m serving`, which both poll it, never read half a file nor refuse one.

The package, one concept a module: `servers` asks the model servers' REST API, `polling`
waits until they agree, `config_writer` delivers a rewritten file (serving.models_config_file
reads and rewrites its text), `steps` orders the edits, `cli` is the command line.
"""

from serving.rollout.cli import main, parse_args
from serving.rollout.errors import RolloutError
from serving.rollout.servers import ModelServers, ServerError, VersionState
from serving.rollout.steps import CANARY, STABLE, Rollout

__all__ = [
    "CANARY",
    "STABLE",
    "ModelServers",
    "Rollout",
    "RolloutError",
    "ServerError",
    "VersionState",
    "main",
    "parse_args",
]
