"""Roll a model version out by editing models.config in the order TF Serving accepts.

`python -m serving.rollout canary 3` loads version 3 beside the stable one, waits until the
model server reports it AVAILABLE, then points the `canary` label at it; `promote`,
`rollback` and `retire` finish the job. `servers` asks the model servers' REST API, `steps`
orders the edits and waits until the servers agree, `__main__` is the command line.
"""
