"""The permission grammar plugins declare, and its compiler to Kubernetes RBAC rules.

Grammar: ``RESOURCE[.GROUP][/SUBRESOURCE]:VERB``

- ``pods:read`` (core group), ``deployments.apps:write``, ``pods/exec:create``,
  ``widgets.example.com:read``, ``*:read`` (every resource of the core group).
- ``read`` means get, list and watch; ``write`` means create, update, patch and delete;
  any other verb is a Kubernetes verb itself (``get``, ``escalate``, ``impersonate``, ...).

Compiling groups permissions into the fewest ``PolicyRule`` objects. A permission may be
*narrowed* to named objects (``resourceNames``), for the verbs RBAC checks against a name:
see :data:`NARROWABLE_VERBS`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

READ_VERBS = ("get", "list", "watch")
WRITE_VERBS = ("create", "update", "patch", "delete")
KNOWN_VERBS = frozenset(
    {
        *READ_VERBS,
        *WRITE_VERBS,
        "deletecollection",
        "bind",
        "escalate",
        "impersonate",
        "approve",
        "sign",
        "use",
        "*",
    }
)

NARROWABLE_VERBS = KNOWN_VERBS - {"create", "list", "watch", "deletecollection", "*"}
"""Verbs a rule with ``resourceNames`` restricts. Not ``create`` (the object has no name yet),
``list``, ``watch`` nor ``deletecollection`` (they name no object): a rule with
``resourceNames`` never grants those, and ``*`` would be both."""

_NAME = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
_PERMISSION = re.compile(
    rf"^(?P<resource>\*|{_NAME})"
    rf"(?:\.(?P<group>{_NAME}(?:\.{_NAME})*))?"
    rf"(?:/(?P<sub>\*|{_NAME}))?"
    rf":(?P<verb>\*|[a-z]+)$"
)


class PermissionError_(ValueError):
    """A permission string that does not follow the grammar (a ValueError)."""


@dataclass(frozen=True, order=True)
class Permission:
    """One parsed permission: ``group`` is ``""`` for the core API group."""

    resource: str
    group: str
    subresource: str | None
    verb: str

    @property
    def verbs(self) -> tuple[str, ...]:
        if self.verb == "read":
            return READ_VERBS
        if self.verb == "write":
            return WRITE_VERBS
        return (self.verb,)

    @property
    def rbac_resource(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource

    def __str__(self) -> str:
        group = f".{self.group}" if self.group else ""
        sub = f"/{self.subresource}" if self.subresource else ""
        return f"{self.resource}{group}{sub}:{self.verb}"


def parse_permission(text: str) -> Permission:
    """Parse one permission string; the error says what is wrong and shows the grammar."""
    if not isinstance(text, str):
        raise PermissionError_(f"permission {text!r} must be a string")
    match = _PERMISSION.match(text.strip())
    if not match:
        raise PermissionError_(
            f"{text!r} is not a permission; expected RESOURCE[.GROUP][/SUBRESOURCE]:VERB "
            "such as pods:read, deployments.apps:write or pods/exec:create"
        )
    verb = match["verb"]
    if verb not in KNOWN_VERBS and verb not in ("read", "write"):
        raise PermissionError_(
            f"{text!r}: unknown verb {verb!r}; use read, write or a Kubernetes verb "
            f"({', '.join(sorted(KNOWN_VERBS - {'*'}))})"
        )
    return Permission(match["resource"], match["group"] or "", match["sub"], verb)


def parse_permissions(texts: Iterable[str]) -> list[Permission]:
    return [parse_permission(text) for text in texts]


def expand(permissions: Iterable[Permission]) -> set[tuple[str, str, str]]:
    """The set of ``(group, resource[/sub], verb)`` triples the permissions grant."""
    return {(p.group, p.rbac_resource, verb) for p in permissions for verb in p.verbs}


def covers(granted: Iterable[Permission], wanted: Iterable[Permission]) -> bool:
    """True when every verb of ``wanted`` is granted, with Kubernetes' wildcard rules:
    ``*`` covers every resource and subresource, ``*/scale`` the scale subresource of every
    resource; there is no ``pods/*`` wildcard in RBAC, so none here either."""
    have = expand(granted)
    for group, resource, verb in expand(wanted):
        if not any(
            g == group
            and (
                r == resource
                or r == "*"
                or (r.startswith("*/") and "/" in resource and resource.split("/", 1)[1] == r[2:])
            )
            and v in (verb, "*")
            for g, r, v in have
        ):
            return False
    return True


def narrowable(permission: Permission) -> bool:
    """Whether RBAC can restrict every verb of ``permission`` to named objects."""
    return all(verb in NARROWABLE_VERBS for verb in permission.verbs)


def compile_rules(
    permissions: Iterable[Permission | str],
    narrowed: Mapping[Permission, Sequence[str]] | None = None,
) -> list[dict[str, list[str]]]:
    """Compile permissions to RBAC ``PolicyRule`` dicts, merged by group and verb set.

    ``narrowed``: permissions (among ``permissions``, each :func:`narrowable`) limited to
    the named objects. Each becomes a rule of its own with ``resourceNames``, after the
    others; one narrowed to no name becomes no rule at all (a rule with an empty
    ``resourceNames`` would grant every name).

    >>> compile_rules(["pods:read", "services:read", "pods/log:get"])
    [{'apiGroups': [''], 'resources': ['pods/log'], 'verbs': ['get']},
     {'apiGroups': [''], 'resources': ['pods', 'services'], 'verbs': ['get', 'list', 'watch']}]
    """
    parsed = [p if isinstance(p, Permission) else parse_permission(p) for p in permissions]
    narrowed = narrowed or {}
    verbs_by_resource: dict[tuple[str, str], set[str]] = {}
    for permission in parsed:
        if permission in narrowed:
            continue
        key = (permission.group, permission.rbac_resource)
        verbs_by_resource.setdefault(key, set()).update(permission.verbs)
    merged: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for (group, resource), verbs in sorted(verbs_by_resource.items()):
        merged.setdefault((group, tuple(sorted(verbs))), []).append(resource)
    rules: list[dict[str, list[str]]] = [
        {"apiGroups": [group], "resources": sorted(resources), "verbs": list(verbs)}
        for (group, verbs), resources in sorted(
            merged.items(), key=lambda item: (item[0][0], len(item[0][1]), item[0][1])
        )
    ]
    for permission in sorted({p for p in parsed if p in narrowed}, key=str):
        if not narrowable(permission):
            raise PermissionError_(f"{permission}: RBAC cannot narrow {permission.verb} by name")
        names = sorted(set(narrowed[permission]))
        if names:
            rules.append(
                {
                    "apiGroups": [permission.group],
                    "resources": [permission.rbac_resource],
                    "verbs": sorted(permission.verbs),
                    "resourceNames": names,
                }
            )
    return rules
