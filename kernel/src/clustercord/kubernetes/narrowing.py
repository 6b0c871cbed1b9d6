"""A plugin's declared permissions narrowed, at run time, to named objects.

A manifest names resources, never objects: the SSO plugin declares ``groups:impersonate``, but
which groups it should impersonate is known only once an admin maps Discord roles. With
``await ctx.kubernetes.narrow("groups:impersonate", ["dev-team"])`` the plugin limits a
permission it declares to those names; the kernel stores the narrowing here (kernel storage:
it survives restarts), compiles the permission into a rule with ``resourceNames`` at every
provisioning of the plugin's ClusterRole (``plugin_identity``), and re-provisions the plugin's
ClusterRole on every registered cluster when it changes. ``names=None`` lifts it; ``[]``
grants no name at all.

What holds, whatever the plugin asks (:func:`check`):

- only permissions its manifest declares, exactly as declared: a plugin narrows, never widens;
- only verbs RBAC restricts by name (``NARROWABLE_VERBS``): never ``create``, ``list``,
  ``watch``, ``deletecollection`` (nor ``read``, ``write``, ``*``, which include them);
- not a permission another declared one grants as well (the narrowing would not hold);
- no ``system:`` user or group to impersonate (the kernel never lets a plugin impersonate one).
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from clustercord_sdk.errors import PermissionDenied, UsageError
from clustercord_sdk.permissions import (
    NARROWABLE_VERBS,
    Permission,
    PermissionError_,
    covers,
    narrowable,
    parse_permission,
)

SCOPE = "_narrowing"
"""The kernel's key/value scope (``_`` is never a plugin's name): plugin → narrowings."""
MAX_NAMES = 500
"""Names per narrowed permission: a ClusterRole is one object, stored whole."""
MAX_NAME = 253
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_IMPERSONATED = frozenset({("", "users"), ("", "groups")})


class Narrowings:
    """The stored narrowings, per plugin: ``{"groups:impersonate": ["dev-team"]}``.

    Kept in the kernel's database (the ``_kv`` table), read on each use rather than cached,
    so another process of the same instance (``clustercord run``) narrowing a plugin is seen
    at this one's next provisioning instead of being undone by it. Without a database (a
    test that builds a bare service) they live in memory.
    """

    def __init__(self, database: Any = None) -> None:
        self._database = database
        self._memory: dict[str, dict[str, list[str]]] = {}
        self._lock = threading.RLock()

    def of(self, plugin: str) -> dict[str, list[str]]:
        """The plugin's narrowings, as stored (a copy)."""
        if self._database is None:
            with self._lock:
                return json.loads(json.dumps(self._memory.get(plugin, {})))  # type: ignore[no-any-return]
        with self._database.lock:  # not in the middle of another thread's transaction
            stored = self._database.kv_get(SCOPE, plugin, {})
        return dict(stored) if isinstance(stored, dict) else {}

    def set(self, plugin: str, permission: Permission, names: Sequence[str] | None) -> bool:
        """Store (``None``: lift) the narrowing of ``permission``; ``False`` if unchanged."""
        key = str(permission)
        # Read and written in one transaction: two narrowings at once (of two permissions,
        # or from two processes) must not drop one another.
        with self._lock, self._transaction():
            current = self.of(plugin)
            wanted = dict(current)
            if names is None:
                wanted.pop(key, None)
            else:
                wanted[key] = sorted(set(names))
            if wanted == current:
                return False
            if self._database is None:
                self._memory[plugin] = wanted
            elif wanted:
                self._database.kv_set(SCOPE, plugin, wanted)
            else:
                self._database.kv_delete(SCOPE, plugin)
            return True

    def _transaction(self) -> Any:
        if self._database is None:
            return contextlib.nullcontext()
        return self._database.transaction()

    def forget(self, plugin: str) -> None:
        """A removed plugin's narrowings (a plugin installed again under its name starts
        with its manifest's rights, not a stranger's narrowing)."""
        with self._lock:
            self._memory.pop(plugin, None)
            if self._database is not None:
                self._database.kv_delete(SCOPE, plugin)

    def for_rules(
        self, plugin: str, declared: Iterable[Permission]
    ) -> dict[Permission, tuple[str, ...]]:
        """The narrowings that apply to the ClusterRole compiled from ``declared``: a
        narrowing of a permission an update no longer declares (or that is no longer
        narrowable) is ignored, never compiled into a right."""
        by_text = {str(p): p for p in declared}
        out: dict[Permission, tuple[str, ...]] = {}
        for text, names in self.of(plugin).items():
            permission = by_text.get(text)
            if permission is not None and narrowable(permission) and isinstance(names, list):
                out[permission] = tuple(str(n) for n in names)
        return out


def check(
    plugin: str,
    declared: Sequence[Permission],
    granted: Sequence[Permission],
    text: Any,
    names: Any,
) -> tuple[Permission, tuple[str, ...] | None]:
    """The narrowing a plugin asks for, checked: ``(permission, names or None)``.

    ``declared``: its manifest's permissions; ``granted``: what its ClusterRole holds for
    them (with the rights the kernel adds, such as ``get`` beside a stream's ``create``).
    Raises ``UsageError`` or ``PermissionDenied`` saying what is wrong; nothing is stored.
    """
    if not isinstance(text, str):
        raise UsageError("narrow: the permission is a string such as groups:impersonate")
    try:
        permission = parse_permission(text)
    except PermissionError_ as error:
        raise UsageError(f"narrow: {error}") from None
    if not narrowable(permission):
        raise UsageError(
            f"narrow: {permission} cannot be limited to names: RBAC checks resourceNames only "
            f"for {', '.join(sorted(NARROWABLE_VERBS))} (never create, list, watch or "
            "deletecollection, which name no existing object)"
        )
    if permission not in declared:
        raise PermissionDenied(
            f"plugin {plugin} does not declare {permission}: a plugin narrows a permission "
            "its manifest declares, never adds one"
        )
    for other in granted:
        if other != permission and covers([other], [permission]):
            raise UsageError(
                f"narrow: {permission} is granted by {other} too, so narrowing it would not "
                "hold; declare them apart"
            )
    if names is None:
        return permission, None
    if isinstance(names, (str, bytes)) or not isinstance(names, (list, tuple)):
        raise UsageError("narrow: names is a list of names ([] for none, None to lift it)")
    if len(names) > MAX_NAMES:
        raise UsageError(f"narrow: at most {MAX_NAMES} names, not {len(names)}")
    for name in names:
        if not isinstance(name, str) or not name or len(name) > MAX_NAME:
            raise UsageError(f"narrow: {name!r} is not a name (1 to {MAX_NAME} characters)")
        if _CONTROL.search(name):
            raise UsageError(f"narrow: {name!r} holds control characters")
        if (
            "impersonate" in permission.verbs
            and (permission.group, permission.resource) in _IMPERSONATED
            and name.startswith("system:")
        ):
            raise PermissionDenied(
                f"plugin {plugin} may never impersonate {name!r}: no system: user or group"
            )
    return permission, tuple(sorted(set(names)))
