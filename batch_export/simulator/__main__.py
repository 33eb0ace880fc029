"""``python -m batch_export.simulator`` runs the ``simulate`` command standalone."""

from .command import main

__all__: list[str] = []

if __name__ == "__main__":
    main()
