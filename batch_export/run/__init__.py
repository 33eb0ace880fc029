"""Run: one run of the pipeline (options, the task window, the per-target protocol, push delivery, run_export).

Nothing is re-exported here: import from the module that owns a name.
"""

__all__: list[str] = []
