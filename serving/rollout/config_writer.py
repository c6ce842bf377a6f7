"""How a rewritten models.config reaches the model servers.

The file is replaced atomically where the servers poll it; where they read a copy (a
Kubernetes ConfigMap), the --after-write command delivers it. A dry run prints instead.
"""

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from serving.models_config_file import write_atomically
from serving.rollout.errors import RolloutError


class ConfigWriter:
    """Writes the text of one models.config and hands it on.

    Args:
        path: the models.config the model servers poll (or a copy that `after_write`
            delivers to them).
        dry_run: print the text that would be written, write nothing.
        after_write: a shell command run after each write; it sees the file's path as
            $MODELS_CONFIG.
        say: prints one line of progress.
    """

    def __init__(
        self,
        path: Path,
        *,
        dry_run: bool,
        after_write: str | None,
        say: Callable[[str], None],
    ) -> None:
        self.path = path
        self.dry_run = dry_run
        self.after_write = after_write
        self._say = say

    def write(self, text: str, summary: str, note: str = "") -> None:
        """Replace the file with `text`; `summary` says what changed, `note` when (dry run)."""
        if self.dry_run:
            self._say(f"# {note or 'would write'} {self.path}: {summary}")
            self._say(text)
            return
        write_atomically(self.path, text)
        self._say(f"Wrote {self.path}: {summary}.")
        if self.after_write:
            env = {**os.environ, "MODELS_CONFIG": str(self.path)}
            result = subprocess.run(self.after_write, shell=True, env=env, check=False)
            if result.returncode != 0:
                raise RolloutError(
                    f"The --after-write command exited with {result.returncode}; "
                    f"{self.path} is written but may not have reached the servers."
                )
