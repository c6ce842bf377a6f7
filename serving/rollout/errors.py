"""The one error a rollout step reports to the person running it."""


class RolloutError(Exception):
    """A step refused or not finished; the message says why and what to do next."""
