"""Ed25519 keys for signing seals: ``batch-export keygen``, ``run --sign-key``, ``verify --key``.

The private key is PEM (PKCS #8, unencrypted: a scheduled job has nobody to
type a passphrase; keep it readable by the job's user only), the public key
PEM (SubjectPublicKeyInfo). A seal carries the signature and the key's ID
(``ed25519:`` + the first 16 bytes of the SHA-256 of the raw public key, in
hex), never the private key. What a signature proves depends on where the
private key lives: docs/compliance-archiving.md.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..durable import fsync_dir, make_private_dir, open_private, write_all
from ..errors import ConfigError

__all__ = [
    "ALGORITHM",
    "PRIVATE_KEY_NAME",
    "PUBLIC_KEY_NAME",
    "Signer",
    "TrustedKeys",
    "generate_key_pair",
    "key_id",
    "load_public_keys",
]

ALGORITHM = "ed25519"
PRIVATE_KEY_NAME = "signing.key"
PUBLIC_KEY_NAME = "signing.pub"


def key_id(public: Ed25519PublicKey) -> str:
    """A short, stable name for a public key: ``ed25519:<32 hex digits>``."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return f"{ALGORITHM}:{hashlib.sha256(raw).hexdigest()[:32]}"


def generate_key_pair(directory: Path) -> tuple[Path, Path, str]:
    """Write ``signing.key`` (0600) and ``signing.pub`` into ``directory``; their paths and key ID.

    Refuses to replace an existing key: a lost private key cannot sign
    again, and a replaced public key no longer checks the old seals.
    """
    private_path, public_path = directory / PRIVATE_KEY_NAME, directory / PUBLIC_KEY_NAME
    for path in (private_path, public_path):
        if path.exists():
            raise ConfigError(
                f"{path} already exists; keygen never replaces a key (seals signed with it "
                "could no longer be checked): choose another directory"
            )
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"{directory} is a file, not a directory")
    try:
        make_private_dir(directory)
        key = Ed25519PrivateKey.generate()
        private_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        public_pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        _write_new(private_path, private_pem, 0o600)
        _write_new(public_path, public_pem, 0o644)  # public: meant to be handed out
        fsync_dir(directory)
    except OSError as exc:
        raise ConfigError(
            f"cannot write the key pair into {directory}: {exc.strerror or exc}"
        ) from None
    return private_path, public_path, key_id(key.public_key())


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        write_all(fd, data)
        os.fchmod(fd, mode)
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Signer:
    """A loaded private key that signs seals."""

    _key: Ed25519PrivateKey
    key_id: str

    @classmethod
    def load(cls, path: Path) -> Signer:
        """Read ``--sign-key FILE``; ConfigError that says what is wrong with it."""
        data = _read_key_file(path, "--sign-key")
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except TypeError:
            raise ConfigError(
                f"--sign-key {path} is encrypted; batch-export needs an unencrypted key"
            ) from None
        except ValueError:
            raise ConfigError(
                f"--sign-key {path} is not a PEM private key; make one with batch-export keygen DIR"
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(
                f"--sign-key {path} is not an Ed25519 key; make one with batch-export keygen DIR"
            )
        mode = os.stat(path).st_mode & 0o077
        if mode:
            raise ConfigError(
                f"--sign-key {path} can be read by other users (mode {os.stat(path).st_mode & 0o777:o}); "
                f"chmod 600 {path}"
            )
        return cls(key, key_id(key.public_key()))

    def sign(self, body: bytes) -> dict[str, Any]:
        """The ``signature`` member of a seal whose canonical bytes are ``body``."""
        public = self._key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return {
            "algorithm": ALGORITHM,
            "key_id": self.key_id,
            "public_key": base64.b64encode(public).decode(),
            "value": base64.b64encode(self._key.sign(body)).decode(),
        }


class TrustedKeys:
    """The public keys given to ``verify --key``: a seal must be signed by one of them."""

    def __init__(self, keys: Iterable[Ed25519PublicKey]) -> None:
        self._keys = {key_id(key): key for key in keys}

    def __bool__(self) -> bool:
        return bool(self._keys)

    def check(self, body: bytes, signature: object) -> str | None:
        """None when ``signature`` is a valid signature of ``body`` by a trusted key, else why not."""
        if not isinstance(signature, dict):
            return "is not signed"
        if signature.get("algorithm") != ALGORITHM:
            return f"is signed with {signature.get('algorithm')!r}, not {ALGORITHM}"
        key = self._keys.get(str(signature.get("key_id")))
        if key is None:
            return f"is signed by key {signature.get('key_id')}, which is not a --key given"
        try:
            key.verify(base64.b64decode(str(signature.get("value")), validate=True), body)
        except (InvalidSignature, ValueError):
            return "has a signature that does not match its content (the seal was changed)"
        return None


def load_public_keys(paths: Iterable[Path]) -> TrustedKeys:
    """Read the ``--key`` files; ConfigError that says which one is not a public key."""
    keys: list[Ed25519PublicKey] = []
    for path in paths:
        data = _read_key_file(path, "--key")
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError:
            hint = " (it is the private key: give signing.pub)" if b"PRIVATE KEY" in data else ""
            raise ConfigError(f"--key {path} is not a PEM public key{hint}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise ConfigError(f"--key {path} is not an Ed25519 public key")
        keys.append(key)
    return TrustedKeys(keys)


def _read_key_file(path: Path, option: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{option} {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"{option} {path} is a directory; give the key file") from None
    except OSError as exc:
        raise ConfigError(f"{option} {path} cannot be read: {exc.strerror or exc}") from None
