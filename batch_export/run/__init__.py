"""One run: options, the task window, the per-target protocol, ``run_export``.

Import from the modules: ``run.options``, ``run.window``, ``run.target``,
``run.delivery``, ``run.orchestrate``, ``run.scheduling``, ``run.progress``.
The public API is re-exported by ``batch_export`` itself.
"""

__all__: list[str] = []
