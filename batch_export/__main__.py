"""``python -m batch_export`` is the ``batch-export`` command."""

from .cli import main

main()
