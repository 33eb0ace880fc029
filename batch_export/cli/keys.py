"""``batch-export keygen``: the Ed25519 key pair that signs seals."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import ExportError
from ..redaction import Redactor
from .common import CONTEXT, failure
from .console import Console

__all__ = ["keygen"]


@click.command(context_settings=CONTEXT)
@click.argument("key_dir", metavar="DIR", type=click.Path(path_type=Path))
def keygen(key_dir: Path) -> None:
    """Write an Ed25519 key pair into DIR: signing.key (0600) and signing.pub.

    Give signing.key to `run --sign-key` to sign each seal, and signing.pub
    to `verify --key` (and to your auditors). A key kept on the archive's
    own host proves less than one kept elsewhere: whoever can read it can
    sign a rewritten archive (docs/compliance-archiving.md). An existing key
    is never replaced.

    \b
    Examples:
      batch-export keygen ~/.config/batch-export/keys
      batch-export run ids.csv --out archive/ --sign-key ~/.config/batch-export/keys/signing.key
      batch-export verify archive/ --key ~/.config/batch-export/keys/signing.pub
    """
    from ..evidence.signing import generate_key_pair  # cryptography: only for this command

    try:
        private, public, key_id = generate_key_pair(key_dir)
    except ExportError as exc:
        raise failure(str(exc), Redactor(), Console()) from None
    click.echo(f"private key: {private} (keep it secret; mode 0600)", err=True)
    click.echo(f"public key:  {public}", err=True)
    click.echo(key_id)
