"""The object-storage sink, imported only when asked for.

aiobotocore is an optional extra (``pip install 'batch-export[s3]'``): a run
into local files, ``status`` or a ``verify`` of local files never import it.
"""

from __future__ import annotations

from ..errors import ConfigError
from .s3_settings import S3Settings
from .sink import Sink

__all__ = ["store_sink"]


def store_sink(settings: S3Settings, *, gzip: bool = False) -> Sink:
    """An ``S3Sink``; ConfigError naming the extra when aiobotocore is not installed."""
    try:
        from .s3 import S3Sink
    except ImportError:
        raise ConfigError(
            "object storage (s3://…) needs the extra: pip install 'batch-export[s3]'"
        ) from None
    return S3Sink(settings, gzip=gzip)
