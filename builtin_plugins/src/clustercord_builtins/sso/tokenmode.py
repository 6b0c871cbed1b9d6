"""Token mode: kubectl straight to the API server with a bound ServiceAccount token, where
no client can reach the gateway (no ingress to ClusterCord).

Per user, a ServiceAccount ``discord-<id>`` in ``clustercord-users`` (the plugin's namespace),
bound by :mod:`.bindings` to what the user's mapped groups hold; per session, a Secret
``sso-<session>`` and a TokenRequest token bound to it (the API server's audience, expiring
with the session, at least Kubernetes' 10 minutes). The API server checks the bound Secret
(name and uid) on every request, so revoking deletes the Secret and the token stops at once;
the last session of a user gone, the ServiceAccount is deleted too (which would stop every
token of it anyway).

What this mode cannot do, because requests never pass ClusterCord: the IP allowlist, device
binding, the per-request audit of ``/sso audit``, and ending a watch or exec already open
(the API server checks a token when a request starts, not while it streams).
"""

from __future__ import annotations

import base64
from typing import Any

import yaml

from clustercord_builtins.sso.bindings import MANAGED_BY, OURS, USERS_NAMESPACE, account_name

MIN_SECONDS = 600
"""Kubernetes refuses TokenRequests shorter than 10 minutes."""
LABELS = {MANAGED_BY: OURS}


def secret_name(session_id: str) -> str:
    return f"sso-{session_id}"


async def _ensure(kubernetes: Any, resource: str, body: dict[str, Any], **where: Any) -> None:
    try:
        await kubernetes.create(resource, body, **where)
    except Exception as exc:  # there already: fine (ours or an admin's)
        if not str(exc).startswith("conflict"):
            raise


async def issue(
    kubernetes: Any, cluster: str, user_id: str, session_id: str, seconds: float
) -> tuple[str, int]:
    """A token for ``user_id``'s ServiceAccount bound to the session's Secret: ``(token,
    seconds it lasts)``."""
    account = account_name(user_id)
    await _ensure(
        kubernetes,
        "namespaces",
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": USERS_NAMESPACE, "labels": LABELS}},
        cluster=cluster,
    )  # fmt: skip
    here = {"namespace": USERS_NAMESPACE, "cluster": cluster}
    labels = {**LABELS, "clustercord.io/discord-user": user_id}
    await _ensure(
        kubernetes,
        "serviceaccounts",
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": account, "labels": labels}, "automountServiceAccountToken": False},
        **here,
    )  # fmt: skip
    secret = await kubernetes.create(
        "secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {
                "name": secret_name(session_id),
                "labels": {**LABELS, "clustercord.io/sso-session": session_id},
            },
        },
        **here,
    )
    lasts = max(MIN_SECONDS, int(seconds))
    answer = await kubernetes.create(
        "serviceaccounts/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "metadata": {"name": account},
            # No audiences: the API server's own, the only ones kubectl's requests are for.
            "spec": {
                "expirationSeconds": lasts,
                "boundObjectRef": {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "name": secret_name(session_id),
                    "uid": secret["metadata"]["uid"],
                },
            },
        },
        **here,
    )
    return str(answer["status"]["token"]), lasts


async def revoke(
    kubernetes: Any, cluster: str, user_id: str, session_id: str, *, last: bool
) -> None:
    """Stop the session's token now: its Secret deleted (and the user's ServiceAccount when
    this was their ``last`` token session)."""
    here = {"namespace": USERS_NAMESPACE, "cluster": cluster}
    targets = [("secrets", secret_name(session_id))]
    if last:
        targets.append(("serviceaccounts", account_name(user_id)))
    for resource, name in targets:
        try:
            await kubernetes.delete(resource, name, **here)
        except Exception as exc:
            if not str(exc).startswith("not found"):
                raise


async def _root_ca(kubernetes: Any, cluster: str) -> str | None:
    """The cluster's CA from ``kube-root-ca.crt``: ``default``'s (a just-made namespace gets
    its copy a moment later), else ours; ``None`` when neither has it."""
    for namespace in ("default", USERS_NAMESPACE):
        try:
            found = await kubernetes.get(
                "configmaps", "kube-root-ca.crt", namespace=namespace, cluster=cluster
            )
        except Exception:  # not published there: the next, else the user adds the CA
            continue
        pem = (found.get("data") or {}).get("ca.crt")
        if pem:
            return str(pem)
    return None


async def kubeconfig(kubernetes: Any, cluster: str, user_id: str, token: str) -> str:
    """A kubeconfig straight to the cluster's API server with the bound token; the CA is the
    one the API server publishes in every namespace (``kube-root-ca.crt``)."""
    info = next(c for c in kubernetes.clusters() if c.name == cluster)
    entry: dict[str, Any] = {"server": info.server}
    pem = await _root_ca(kubernetes, cluster)
    if pem:
        entry["certificate-authority-data"] = base64.b64encode(pem.encode()).decode()
    name, user = f"{cluster}-sso-token", account_name(user_id)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": entry}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": user}}],
        "current-context": name,
    }
    return yaml.safe_dump(config, sort_keys=False)
