"""Storage: where exports go, behind one interface (``sink.Sink``); the local files today.

Nothing is re-exported here: import from the module that owns a name.
"""

__all__: list[str] = []
