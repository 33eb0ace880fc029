"""Evidence: what a run leaves behind (the state directory, the journal and its reader, the manifest, status, verify).

Nothing is re-exported here: import from the module that owns a name.
"""

__all__: list[str] = []
