"""Ed25519 signatures of final reports and addenda (RFC 8032, via ``cryptography``).

The signed content is a canonical JSON text of the report's identity and wording (sorted
keys, UTF-8, no spaces). Its SHA-256 is stored beside the signature so a verifier can tell
"the row changed" (digest mismatch) from "the signature is not ours" (signature invalid).
The private key is a PKCS#8 PEM file under the data directory, created on first use with
mode 0600 and never part of the repository; the public key is published for verifiers.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)


def canonical(content: dict[str, Any]) -> bytes:
    """The bytes that are digested and signed: canonical JSON of ``content``."""
    return json.dumps(content, sort_keys=True, ensure_ascii=False,
                      separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class Signature:
    digest: str
    """SHA-256 of the canonical content, hex."""
    signature: str
    """Ed25519 signature of the canonical content, base64."""
    key_id: str
    """SHA-256 of the raw public key, hex: which key signed."""


@dataclass(frozen=True)
class Check:
    """What a verification found; ``intact`` only if every part holds."""

    digest_ok: bool
    signature_ok: bool
    key_known: bool

    @property
    def intact(self) -> bool:
        return self.digest_ok and self.signature_ok and self.key_known


class ReportSigner:
    """Signs and verifies with the node's report-signing key, created on first use."""

    def __init__(self, key_path: Path) -> None:
        self.key_path = Path(key_path)
        self._key: Ed25519PrivateKey | None = None
        self._lock = threading.Lock()

    def _private(self) -> Ed25519PrivateKey:
        with self._lock:
            if self._key is None:
                self._key = self._load_or_create()
            return self._key

    def _load_or_create(self) -> Ed25519PrivateKey:
        path = self.key_path
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
            try:  # O_EXCL: two processes starting together keep one key
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(pem)
                    fh.flush()
                    os.fsync(fh.fileno())
                return key
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(loaded, Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 private key")
        return loaded

    def public_key(self) -> Ed25519PublicKey:
        return self._private().public_key()

    def public_pem(self) -> str:
        return self.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    def key_id(self) -> str:
        raw = self.public_key().public_bytes(serialization.Encoding.Raw,
                                             serialization.PublicFormat.Raw)
        return hashlib.sha256(raw).hexdigest()

    def sign(self, content: dict[str, Any]) -> Signature:
        data = canonical(content)
        signature = self._private().sign(data)
        return Signature(hashlib.sha256(data).hexdigest(),
                         base64.b64encode(signature).decode("ascii"), self.key_id())

    def verify(self, content: dict[str, Any], digest: str, signature: str,
               key_id: str) -> Check:
        """Recompute the digest of ``content`` and check ``signature`` with our public key."""
        data = canonical(content)
        digest_ok = hashlib.sha256(data).hexdigest() == digest
        key_known = key_id == self.key_id()
        try:
            self.public_key().verify(base64.b64decode(signature, validate=True), data)
            signature_ok = True
        except (InvalidSignature, ValueError):
            signature_ok = False
        return Check(digest_ok, signature_ok, key_known)
