"""Ending a session and keeping the cluster's side in step, whichever mode it was in.

A gateway session ends in our table alone (the gateway reads it on every request). A
token-mode session also has a Secret its token is bound to: it is deleted here, at once, and
the bindings are reconciled so the ServiceAccount loses the groups' rights it held only for
this session. All of it as the plugin's own identity (``plugin.kubernetes``), never the
invoking user's.
"""

from __future__ import annotations

import logging
from typing import Any

from clustercord_builtins.sso import bindings, tokenmode
from clustercord_builtins.sso.sessions import TOKEN, Session, SsoStore

log = logging.getLogger("clustercord.plugins.sso")


async def end(plugin: Any, store: SsoStore, session: Session, by: str) -> bool:
    """Revoke ``session``; ``False`` when it had ended already.

    A token-mode session is released on the cluster *first*: if the cluster cannot be
    reached the error says so and the session stays listed as active (its token may still
    work), so the revoke can be run again rather than be marked done while it is not."""
    current = store.session(session.id)
    if current is None or current.revoked is not None:
        return False
    if session.mode == TOKEN:
        await release(plugin, store, session)
    return store.revoke(session.id, by)


async def release(plugin: Any, store: SsoStore, session: Session) -> None:
    """The cluster's side of an ended token-mode session: its Secret (so its token) gone,
    the user's ServiceAccount too when no other session of theirs needs it, bindings fixed.
    Idempotent: run again after a failure, it finishes the job."""
    holders = store.token_holders(session.cluster, excluding=session.id)
    await tokenmode.revoke(
        plugin.kubernetes,
        session.cluster,
        session.user_id,
        session.id,
        last=session.user_id not in holders,
    )
    await bindings.reconcile(plugin.kubernetes, session.cluster, store.mapping_rules(), holders)


async def sync(plugin: Any, store: SsoStore, clusters: list[str] | None = None) -> dict[str, Any]:
    """Reconcile the bindings on every cluster (or ``clusters``): what changed, per cluster;
    a cluster that cannot be reached or refuses says why, the others are still done."""
    names = clusters or [c.name for c in plugin.kubernetes.clusters()]
    rules = store.mapping_rules()
    report: dict[str, Any] = {}
    for name in names:
        try:
            report[name] = await bindings.reconcile(
                plugin.kubernetes, name, rules, store.token_holders(name)
            )
        except Exception as exc:
            log.warning("sso: could not reconcile RoleBindings on %s: %s", name, exc)
            report[name] = {"error": str(exc)}
    return report
