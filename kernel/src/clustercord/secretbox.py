"""Encryption at rest for what the kernel must store but nobody may read (uploaded
kubeconfigs): Fernet (AES-128-CBC + HMAC-SHA256) from ``cryptography``.

The key is ``CLUSTERCORD_SECRET_KEY`` (a Fernet key, or any passphrase, stretched with
scrypt), else ``<data dir>/secret.key``, generated once with mode 0600.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from clustercord_sdk.errors import CommandError


class SecretBox:
    def __init__(self, key: bytes) -> None:
        from cryptography.fernet import Fernet

        self._fernet = Fernet(key)

    @classmethod
    def from_settings(cls, data_dir: Path, env: dict[str, str] | None = None) -> SecretBox:
        env = dict(os.environ) if env is None else env
        configured = env.get("CLUSTERCORD_SECRET_KEY")
        if configured:
            return cls(_as_fernet_key(configured))
        path = data_dir / "secret.key"
        if not path.exists():
            from cryptography.fernet import Fernet

            data_dir.mkdir(parents=True, exist_ok=True)
            # O_EXCL: two kernels starting together must not write two different keys.
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(Fernet.generate_key())
        if path.stat().st_mode & 0o077:
            raise CommandError(f"{path} is readable by others; run: chmod 600 {path}")
        return cls(path.read_bytes().strip())

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def open(self, token: str) -> str:
        from cryptography.fernet import InvalidToken

        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise CommandError(
                "a stored secret cannot be decrypted: CLUSTERCORD_SECRET_KEY or secret.key "
                "is not the key it was stored with"
            ) from None


def _as_fernet_key(value: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(value.encode())
        if len(raw) == 32:
            return value.encode()
    except ValueError:
        pass
    # A passphrase: stretch it. The salt is fixed because the key must be reproducible
    # from the passphrase alone; scrypt's cost is what protects a weak passphrase.
    derived = hashlib.scrypt(
        value.encode(), salt=b"clustercord-secretbox", n=2**14, r=8, p=1, dklen=32
    )
    return base64.urlsafe_b64encode(derived)
