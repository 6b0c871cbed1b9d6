"""Encryption at rest with the data key: what the kernel must store but nobody may read
(uploaded kubeconfigs, private notifications in the outbox) and what plugins seal through
their :class:`~clustercord_sdk.services.Sealer` (terminal recordings).

The data key is ``CLUSTERCORD_SECRET_KEY`` (a Fernet key, or any passphrase, stretched with
scrypt), else ``<data dir>/secret.key``, generated once with mode 0600 -- but only while
nothing sealed is stored. Once the key has been used, its id (an HMAC of a constant under
the key, never the key) is kept in the database; at start, a key that is missing while
sealed data exists, or that is not the recorded one, is a :class:`DataKeyError` saying what
would be lost and how to put the key back. A new key is never made over sealed data.

- The kernel's own secrets: Fernet (AES-128-CBC + HMAC-SHA256), :class:`SecretBox`.
- A plugin's: AES-256-GCM under a key derived from the data key with HKDF-SHA256 and the
  plugin's name (:class:`PluginSealer`), so one plugin cannot open what another sealed, and
  the name is also the associated data.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clustercord_sdk.errors import CommandError

if TYPE_CHECKING:
    from clustercord.storage import Database

log = logging.getLogger("clustercord.kernel")

ENV_KEY = "CLUSTERCORD_SECRET_KEY"
KEY_FILE = "secret.key"
KEY_SCOPE = "_secretbox"
"""The kernel's ``_kv`` scope for the key id and the plugins that sealed something."""
SEALED_MAGIC = b"\x00ccseal1"
"""How a plugin's sealed value starts (never a gzip, JSON or text value's first byte)."""
_NONCE = 12


class DataKeyError(CommandError):
    """The data key is missing while sealed data exists, or is not the key it was sealed with."""


class SecretBox:
    def __init__(self, key: bytes) -> None:
        from cryptography.fernet import Fernet

        self._fernet = Fernet(key)
        self._raw = base64.urlsafe_b64decode(key)

    @classmethod
    def from_settings(
        cls,
        data_dir: Path,
        env: Mapping[str, str] | None = None,
        *,
        database: Database | None = None,
    ) -> SecretBox:
        """The data key. With ``database`` (the kernel): checked against the key id it
        recorded, and never created while sealed data is stored (:class:`DataKeyError`)."""
        env = dict(os.environ) if env is None else env
        configured = env.get(ENV_KEY)
        path = data_dir / KEY_FILE
        if configured:
            box, source = cls(_as_fernet_key(configured)), f"{ENV_KEY} (the environment)"
        else:
            if not path.exists():
                lost = sealed_inventory(database) if database is not None else []
                if lost:
                    raise DataKeyError(_missing_message(path, lost))
                _create_key(path)
            box, source = cls(_read_key(path)), str(path)
        if database is not None:
            _check_key_id(box, database, source, path)
        return box

    @property
    def key_id(self) -> str:
        """Names the key without revealing it (kept in the database to spot a changed key)."""
        return hmac.new(self._raw, b"clustercord data key id", hashlib.sha256).hexdigest()[:16]

    def derive(self, purpose: str) -> bytes:
        """A 32-byte key for ``purpose`` (HKDF-SHA256): a plugin's sealer key, say."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        return HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=b"clustercord data key",
            info=purpose.encode(),
        ).derive(self._raw)

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def open(self, token: str) -> str:
        from cryptography.fernet import InvalidToken

        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise CommandError(
                f"a stored secret cannot be decrypted: {ENV_KEY} or {KEY_FILE} "
                "is not the key it was stored with"
            ) from None


class DataKey:
    """The kernel's data key, loaded once, when first needed or at start if sealed data
    exists (:meth:`check`); hands out the kernel's :class:`SecretBox` and plugins' sealers."""

    def __init__(
        self, data_dir: Path, database: Database, env: Mapping[str, str] | None = None
    ) -> None:
        self.data_dir = data_dir
        self.database = database
        self._env = env
        self._box: SecretBox | None = None

    def box(self) -> SecretBox:
        if self._box is None:
            self._box = SecretBox.from_settings(self.data_dir, self._env, database=self.database)
        return self._box

    def check(self) -> None:
        """At start: if anything was ever sealed, the key must be there and be the same one.
        Cheap when nothing was (the key is then made on first use)."""
        if self.database.kv_get(KEY_SCOPE, "key_id") is not None or sealed_inventory(self.database):
            self.box()

    def sealer(self, plugin: str) -> PluginSealer:
        return PluginSealer(plugin, self.box, self._sealed_by)

    def _sealed_by(self, plugin: str) -> None:
        plugins = self.database.kv_get(KEY_SCOPE, "plugins", [])
        if plugin not in plugins:
            _kv_put(self.database, "plugins", sorted({*plugins, plugin}))


class PluginSealer:
    """One plugin's :class:`~clustercord_sdk.services.Sealer`: AES-256-GCM under
    HKDF(data key, ``clustercord plugin sealer:<plugin>``); the key is derived on first use."""

    def __init__(
        self,
        plugin: str,
        box: Callable[[], SecretBox],
        on_first_seal: Callable[[str], None] | None = None,
    ) -> None:
        self.plugin = plugin
        self._box = box
        self._on_first_seal = on_first_seal
        self._aead: Any = None
        self._announced = False

    def _cipher(self) -> Any:
        if self._aead is None:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            self._aead = AESGCM(self._box().derive(f"clustercord plugin sealer:{self.plugin}"))
        return self._aead

    def seal(self, data: bytes) -> bytes:
        cipher = self._cipher()
        if not self._announced and self._on_first_seal is not None:
            self._on_first_seal(self.plugin)  # so a lost key says this plugin's data is lost
        self._announced = True
        nonce = secrets.token_bytes(_NONCE)
        sealed: bytes = cipher.encrypt(nonce, bytes(data), self.plugin.encode())
        return SEALED_MAGIC + nonce + sealed

    def open(self, token: bytes) -> bytes:
        from cryptography.exceptions import InvalidTag

        token = bytes(token)
        if not token.startswith(SEALED_MAGIC):
            raise CommandError(f"plugin {self.plugin}: this value was not sealed (no seal header)")
        body = token[len(SEALED_MAGIC) :]
        try:
            return bytes(self._cipher().decrypt(body[:_NONCE], body[_NONCE:], self.plugin.encode()))
        except (InvalidTag, ValueError):
            raise CommandError(
                f"plugin {self.plugin}: a sealed value cannot be opened: it was sealed by "
                f"another plugin or under another data key ({ENV_KEY} or {KEY_FILE}), "
                "or it was altered"
            ) from None

    @staticmethod
    def is_sealed(data: bytes) -> bool:
        return bytes(data[: len(SEALED_MAGIC)]) == SEALED_MAGIC


# -- what a lost key loses ------------------------------------------------------------------
def sealed_inventory(database: Database) -> list[str]:
    """What is stored sealed under the data key, in words (empty: nothing)."""
    conn = database.conn
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    found = []
    if "_clusters" in tables:
        count = conn.execute("SELECT count(*) FROM _clusters").fetchone()[0]
        if count:
            found.append(f"{count} uploaded cluster{'s' * (count != 1)} (their kubeconfigs)")
    if "_outbox" in tables:
        count = conn.execute(
            "SELECT count(*) FROM _outbox WHERE delivered_at IS NULL AND reply LIKE 'sealed:%'"
        ).fetchone()[0]
        if count:
            found.append(
                f"{count} undelivered private notification{'s' * (count != 1)} (outbox credentials)"
            )
    for plugin in database.kv_get(KEY_SCOPE, "plugins", []):
        prefix = plugin.replace("-", "_") + "__"
        for table in sorted(t for t in tables if t.startswith(prefix)):
            columns = [
                row[1]
                for row in conn.execute(f'PRAGMA table_info("{table}")')
                if str(row[2]).upper() in ("BLOB", "")
            ]
            if not columns:
                continue
            sealed = " OR ".join(f'substr("{c}", 1, ?) = ?' for c in columns)
            params: list[Any] = []
            for _ in columns:
                params += [len(SEALED_MAGIC), SEALED_MAGIC]
            count = conn.execute(
                f'SELECT count(*) FROM "{table}" WHERE {sealed}', params
            ).fetchone()[0]
            if count:
                what = table[len(prefix) :]
                found.append(f"{count} sealed {what} of plugin {plugin} (table {table})")
    return found


def forget_sealed(database: Database) -> list[str]:
    """Delete everything sealed under the data key and its recorded id (what a lost key
    leaves unreadable anyway); what was deleted, in words. For an explicit operator command
    only: never called on its own."""
    lost = sealed_inventory(database)
    conn = database.conn
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    with database.transaction():
        if "_clusters" in tables:
            conn.execute("DELETE FROM _clusters")
        if "_outbox" in tables:
            conn.execute("DELETE FROM _outbox WHERE reply LIKE 'sealed:%'")
        for plugin in database.kv_get(KEY_SCOPE, "plugins", []):
            prefix = plugin.replace("-", "_") + "__"
            for table in (t for t in tables if t.startswith(prefix)):
                for row in list(conn.execute(f'PRAGMA table_info("{table}")')):
                    if str(row[2]).upper() in ("BLOB", ""):
                        conn.execute(
                            f'DELETE FROM "{table}" WHERE substr("{row[1]}", 1, ?) = ?',
                            (len(SEALED_MAGIC), SEALED_MAGIC),
                        )
        conn.execute("DELETE FROM _kv WHERE scope = ?", (KEY_SCOPE,))
    return lost


def _restore_advice(path: Path) -> str:
    return (
        f"Put the key back: restore {path} from a backup of the data directory (mode 0600), "
        f"or set {ENV_KEY} to the key (or passphrase) the data was sealed with. "
        "ClusterCord never makes a new key over sealed data: the data would be lost for good."
    )


def _missing_message(path: Path, lost: list[str]) -> str:
    return (
        f"the data key is missing: {path} does not exist and {ENV_KEY} is not set, but the "
        f"database holds data sealed with it: {'; '.join(lost)}. Without the key these "
        f"cannot be read. {_restore_advice(path)}"
    )


def _check_key_id(box: SecretBox, database: Database, source: str, path: Path) -> None:
    known = database.kv_get(KEY_SCOPE, "key_id")
    if known == box.key_id:
        return
    lost = sealed_inventory(database)
    if known is None:
        # Sealed before key ids were recorded: the Fernet tokens themselves tell.
        if not _opens_legacy(box, database):
            raise DataKeyError(
                f"the data key from {source} is not the key the stored data was sealed with: "
                f"{'; '.join(lost)} cannot be read. {_restore_advice(path)}"
            )
    elif lost:
        raise DataKeyError(
            f"the data key from {source} (key id {box.key_id}) is not the key the stored data "
            f"was sealed with (key id {known}): {'; '.join(lost)} cannot be read with it. "
            f"{_restore_advice(path)}"
        )
    else:
        log.warning(
            "data key from %s is new (key id %s, was %s); nothing sealed was stored",
            source,
            box.key_id,
            known,
        )
    _kv_put(database, "key_id", box.key_id)


def _kv_put(database: Database, key: str, value: Any) -> None:
    """Record ``value``, also from inside a transaction a plugin opened itself (sqlite-utils'
    ``atomic()``): then it commits, or not, with the plugin's own write."""
    with database.lock:
        if database.conn.in_transaction:
            database.conn.execute(
                "INSERT INTO _kv(scope, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT(scope, key) DO UPDATE SET value = excluded.value",
                (KEY_SCOPE, key, json.dumps(value, sort_keys=True)),
            )
        else:
            database.kv_set(KEY_SCOPE, key, value)


def _opens_legacy(box: SecretBox, database: Database) -> bool:
    conn = database.conn
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    tokens = []
    if "_clusters" in tables:
        tokens += [r[0] for r in conn.execute("SELECT kubeconfig FROM _clusters LIMIT 1")]
    if "_outbox" in tables:
        tokens += [
            r[0][len("sealed:") :]
            for r in conn.execute(
                "SELECT reply FROM _outbox WHERE delivered_at IS NULL "
                "AND reply LIKE 'sealed:%' LIMIT 1"
            )
        ]
    for token in tokens:
        try:
            box.open(token)
        except (CommandError, ValueError):
            return False
    return True


def _create_key(path: Path) -> None:
    from cryptography.fernet import Fernet

    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # O_EXCL: two kernels starting together must not write two different keys.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "wb") as handle:
        handle.write(Fernet.generate_key())
        handle.flush()
        os.fsync(handle.fileno())
    log.info("data key created: %s (back it up with the data directory)", path)


def current_key_id(data_dir: Path, env: Mapping[str, str] | None = None) -> str | None:
    """The id of the data key this directory would use, without ever creating one
    (``None``: no key)."""
    env = dict(os.environ) if env is None else env
    if env.get(ENV_KEY):
        return SecretBox(_as_fernet_key(env[ENV_KEY])).key_id
    path = data_dir / KEY_FILE
    return SecretBox(_read_key(path)).key_id if path.exists() else None


def _read_key(path: Path) -> bytes:
    if path.stat().st_mode & 0o077:
        raise DataKeyError(f"{path} is readable by others; run: chmod 600 {path}")
    return path.read_bytes().strip()


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
