"""``python -m batch_export.simulator`` runs the ``simulate`` command standalone."""

from .command import main

if __name__ == "__main__":
    main()
