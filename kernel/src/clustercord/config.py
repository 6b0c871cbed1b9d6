"""Configuration: a TOML file plus ``CLUSTERCORD_*`` environment variables (which win).

The file is ``$CLUSTERCORD_CONFIG``, else ``<data dir>/clustercord.toml`` when it
exists. Every key is optional; README's configuration reference lists them.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from clustercord_sdk.errors import UsageError


def default_data_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("clustercord", appauthor=False))


@dataclass(frozen=True)
class AccessConfig:
    """Who may run what. Patterns match ``command:subcommand`` (``rbac:*``)."""

    admins: frozenset[str] = frozenset()
    """``user:<id>`` or ``role:<id>`` entries that may run everything, admin commands included."""
    roles: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Discord role id → command patterns its members may run."""
    users: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Discord user id → command patterns."""
    default: str = "allow"
    """For non-admin commands no rule names: ``allow`` or ``deny``."""
    console_admin: bool = True
    """The local console's own user (no ``--as``) is an admin: it already holds the data dir."""


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    plugins_allowlist: frozenset[str] | None = None
    trace_plugins: bool = False
    hook_timeout: float = 5.0
    max_hook_failures: int = 3
    auto_grant_builtins: bool = True
    builtin_plugins: frozenset[str] | None = None
    """Entry points that may be builtins (signed by a release or development key); ``None``:
    the kernel's own list (``plugins.discovery.BUILTIN_PLUGINS``). Not read from the file or
    the environment: the testing kit sets it for plugins a test installs as builtins."""
    isolation: str = "signer"
    """Which plugins run in a process of their own (``clustercord.isolation``): ``signer``
    (all but the builtins signed by a release or development key), ``all``, or ``keys`` (all
    but those signed by a release or development key: the testing kit's default)."""
    isolate: frozenset[str] = frozenset()
    """Plugins isolated whatever signed them (tests)."""
    isolation_timeout: float = 300.0
    """Seconds a call of an isolated plugin may take before its process is stopped."""
    isolation_memory_mb: int = 512
    """Address space of an isolated plugin's process (``RLIMIT_AS``)."""
    isolation_uids: int | None = 2_000_000
    """When the kernel runs as root, each isolated plugin's process drops to a uid (and gid)
    of its own in ``[isolation_uids, isolation_uids + 1,000,000)``, derived from the data
    directory and the plugin's name; ``None``: no drop."""
    isolation_sandbox: str = "auto"
    """What wraps each isolated plugin's process (``clustercord.isolation.view``): ``bwrap``
    (a file view and network namespace of its own; isolated plugins are not started if bwrap
    cannot run), ``auto`` (bwrap where it works, a logged warning otherwise) or ``none``."""
    access: AccessConfig = AccessConfig()
    plugin_config: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Per-plugin config from the file (``[plugins.<name>]``); admin changes are stored."""
    files_dir: Path | None = None
    config_file: Path | None = None
    identity: Mapping[str, Any] = field(default_factory=dict)
    """``[identity]``: Discord users and roles → Kubernetes user and groups (checked at load)."""
    discord: Mapping[str, Any] = field(default_factory=dict)
    """``[discord]``: guilds, allowlist and timings of the Discord front end (checked by it)."""
    backup_every_hours: float = 0.0
    """``[backup] every_hours``: a backup of the database that often while serving (0: off)."""
    backup_keep: int = 7
    """``[backup] keep``: how many scheduled backups are kept (the oldest go first)."""
    marketplace: Mapping[str, Any] = field(default_factory=dict)
    """``[marketplace]``: plugin sources (``clustercord.plugins.sources``, checked by it)."""
    http: Mapping[str, Any] = field(default_factory=dict)
    """``[http]``: the kernel's HTTP service for plugins' routes (``clustercord.http``)."""
    home_cluster: str | None = None
    """``home_cluster``: the cluster whose Lease makes one ``serve`` the active one
    (``clustercord.lease``); ``None``: only the data directory's lock."""

    @property
    def database_path(self) -> Path:
        return self.data_dir / "clustercord.db"

    @property
    def trust_dir(self) -> Path:
        return self.data_dir / "trust"

    @property
    def signing_dir(self) -> Path:
        return self.data_dir / "signing"

    @property
    def output_dir(self) -> Path:
        return self.files_dir or self.data_dir / "files"


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read the configuration; a bad file or value raises :class:`UsageError` naming it."""
    env = os.environ if env is None else env
    data_dir = Path(env.get("CLUSTERCORD_DATA_DIR") or default_data_dir()).expanduser()
    config_file = Path(env["CLUSTERCORD_CONFIG"]) if env.get("CLUSTERCORD_CONFIG") else None
    if config_file is None and (data_dir / "clustercord.toml").exists():
        config_file = data_dir / "clustercord.toml"
    raw: dict[str, Any] = {}
    if config_file is not None:
        try:
            raw = tomllib.loads(config_file.read_text("utf-8"))
        except OSError as exc:
            raise UsageError(f"config file {config_file}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"config file {config_file}: {exc}") from None
    where = str(config_file or "configuration")

    def pick(key: str, env_key: str, kind: type, default: Any) -> Any:
        value = env.get(env_key, raw.get(key, default))
        try:
            if kind is bool and isinstance(value, str):
                return value.strip().lower() in ("1", "true", "yes", "on")
            return kind(value)
        except (TypeError, ValueError):
            raise UsageError(f"{where}: {key} (or {env_key}) must be a {kind.__name__}") from None

    allow = env.get("CLUSTERCORD_PLUGINS", raw.get("plugins_allowlist"))
    if isinstance(allow, str):
        allow = [name.strip() for name in allow.split(",") if name.strip()]
    access_raw = raw.get("access", {})
    if not isinstance(access_raw, dict):
        raise UsageError(f"{where}: [access] must be a table")
    default = access_raw.get("default", "allow")
    if default not in ("allow", "deny"):
        raise UsageError(f"{where}: access.default must be 'allow' or 'deny', not {default!r}")
    access = AccessConfig(
        admins=frozenset(map(str, access_raw.get("admins", []))),
        roles={str(k): tuple(v) for k, v in access_raw.get("roles", {}).items()},
        users={str(k): tuple(v) for k, v in access_raw.get("users", {}).items()},
        default=default,
        console_admin=bool(access_raw.get("console_admin", True)),
    )
    isolation = env.get("CLUSTERCORD_ISOLATION", raw.get("isolation", "signer"))
    if isolation not in ("signer", "keys", "all"):
        raise UsageError(f"{where}: isolation must be signer, keys or all, not {isolation!r}")
    sandbox = env.get("CLUSTERCORD_ISOLATION_SANDBOX", raw.get("isolation_sandbox", "auto"))
    if sandbox not in ("auto", "bwrap", "none"):
        raise UsageError(f"{where}: isolation_sandbox must be auto, bwrap or none, not {sandbox!r}")
    settings = Settings(
        data_dir=data_dir,
        plugins_allowlist=frozenset(allow) if allow is not None else None,
        trace_plugins=pick("trace_plugins", "CLUSTERCORD_TRACE_PLUGINS", bool, False),
        hook_timeout=pick("hook_timeout", "CLUSTERCORD_HOOK_TIMEOUT", float, 5.0),
        max_hook_failures=pick("max_hook_failures", "CLUSTERCORD_MAX_HOOK_FAILURES", int, 3),
        auto_grant_builtins=pick(
            "auto_grant_builtins", "CLUSTERCORD_AUTO_GRANT_BUILTINS", bool, True
        ),
        isolation=pick("isolation", "CLUSTERCORD_ISOLATION", str, "signer"),
        isolation_timeout=pick("isolation_timeout", "CLUSTERCORD_ISOLATION_TIMEOUT", float, 300.0),
        isolation_memory_mb=pick(
            "isolation_memory_mb", "CLUSTERCORD_ISOLATION_MEMORY_MB", int, 512
        ),
        isolation_sandbox=sandbox,
        access=access,
        plugin_config=raw.get("plugins", {}),
        files_dir=Path(env["CLUSTERCORD_FILES_DIR"]) if env.get("CLUSTERCORD_FILES_DIR") else None,
        config_file=config_file,
        identity=_identity(raw.get("identity"), where),
        discord=_table(raw, "discord", where),
        **_backup(_table(raw, "backup", where), where),
        marketplace=_table(raw, "marketplace", where),
        http=_http(raw, env, where),
        home_cluster=pick("home_cluster", "CLUSTERCORD_HOME_CLUSTER", str, "") or None,
    )
    return replace(settings, **overrides) if overrides else settings


def _backup(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    unknown = sorted(set(raw) - {"every_hours", "keep"})
    if unknown:
        raise UsageError(f"{where}: [backup] has no {', '.join(unknown)} (every_hours, keep)")
    every, keep = raw.get("every_hours", 0.0), raw.get("keep", 7)
    if isinstance(every, bool) or not isinstance(every, int | float) or every < 0:
        raise UsageError(f"{where}: backup.every_hours must be a number of hours, 0 for none")
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise UsageError(f"{where}: backup.keep must be a whole number, at least 1")
    return {"backup_every_hours": float(every), "backup_keep": keep}


def _table(raw: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise UsageError(f"{where}: [{key}] must be a table")
    return value


def _http(raw: Mapping[str, Any], env: Mapping[str, str], where: str) -> Mapping[str, Any]:
    from clustercord.http.settings import ENVIRONMENT, HttpSettings

    table = dict(_table(raw, "http", where))
    table.update({key: env[name] for name, key in ENVIRONMENT.items() if env.get(name)})
    try:
        HttpSettings.load(table)  # refuse a bad [http] at start
    except UsageError as exc:
        raise UsageError(f"{where}: {exc}") from None
    return table


def _identity(raw: Any, where: str) -> Mapping[str, Any]:
    from clustercord.kubernetes.identity import IdentityMap

    if raw is not None and not isinstance(raw, dict):
        raise UsageError(f"{where}: [identity] must be a table")
    IdentityMap.from_config(raw, where)  # refuse a bad mapping at start, not at first use
    return raw or {}
