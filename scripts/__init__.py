"""Helper scripts, run from the repository root as modules: `python -m scripts.local_stack`."""
