"""The plugin's own rights on each cluster, narrowed to what the mappings need.

Its manifest declares ``groups:impersonate`` (the gateway impersonates the mapped groups) and
``bind`` on ClusterRoles (RBAC lets it bind only roles it holds or may ``bind``): as declared,
any group and any ClusterRole. The kernel narrows a declared permission to names on request
(``ctx.kubernetes.narrow``, compiled as ``resourceNames`` into the plugin's ClusterRole on
every cluster, kept across restarts), so the plugin asks for exactly the mapped groups and
ClusterRoles, at enable and after each ``/sso map``. With no mapping it holds none: never
``system:masters``, whatever happens in this process.

Users are not narrowed: the user the gateway impersonates is ``discord:<id>`` for any member
who may ever sign in, which ``resourceNames`` cannot express (no patterns); the kernel itself
refuses any other user before a request is sent. Uids (session ids) are random, so neither.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("clustercord.plugins.sso")

IMPERSONATE_GROUPS = "groups:impersonate"
BIND_ROLES = "clusterroles.rbac.authorization.k8s.io:bind"


def wanted(rules: Mapping[str, Mapping[str, list[str]]]) -> dict[str, list[str]]:
    """The names each narrowed permission should allow, from the mappings' rules."""
    groups = sorted({g for rule in rules.values() for g in rule.get("groups") or []})
    roles = sorted({r for rule in rules.values() for r in rule.get("roles") or []})
    return {IMPERSONATE_GROUPS: groups, BIND_ROLES: roles}


async def narrow(
    kubernetes: Any, rules: Mapping[str, Mapping[str, list[str]]], *, wait: bool = True
) -> dict[str, str]:
    """Narrow both permissions to the mappings; returns the clusters that could not be
    updated, with why (the kernel applies the narrowing at their next provisioning)."""
    failed: dict[str, str] = {}
    for permission, names in wanted(rules).items():
        answer = await kubernetes.narrow(permission, names, wait=wait)
        for cluster, outcome in (answer.get("clusters") or {}).items():
            if outcome not in ("ok", "pending"):
                failed.setdefault(cluster, outcome)
    for cluster, why in failed.items():
        log.warning("sso: rights on %s not narrowed to the mappings yet: %s", cluster, why)
    return failed
