"""Input: INPUT.csv → targets (what one target is, and the CSV reader).

Nothing is re-exported here: import from the module that owns a name.
"""

__all__: list[str] = []
