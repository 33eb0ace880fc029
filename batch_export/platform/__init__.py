"""Platform: everything that talks to Copernica (settings, the client and its request path, answers, credentials, pacing, outages, listings, push deliveries).

Nothing is re-exported here: import from the module that owns a name.
"""

__all__: list[str] = []
