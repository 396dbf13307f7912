"""The generic engine: ordered, idempotent processing of keyed streams inside broker sessions.

It knows nothing about any business: a workflow (see `workflow.py`) tells it how to parse a body, apply a
step and store a state. `decide.py` is the pure core, `processor.py` the shell that reads and commits.
"""
