"""Each plugin acts on a cluster as its own ServiceAccount, with RBAC compiled from its manifest.

Per cluster and plugin, in namespace ``clustercord-system``:

- a ServiceAccount ``plugin-<name>``;
- a ClusterRole ``clustercord:plugin:<name>`` holding the rules compiled from its permissions
  (plus ``get`` where a WebSocket stream needs it: see :func:`role_permissions`);
- a ClusterRoleBinding of the same name granting it to the ServiceAccount.

All three carry ``app.kubernetes.io/managed-by: clustercord``. The ClusterRole is created
empty and then given its rules by name, so the kernel's ``escalate`` may be limited to its
plugins' role names (deploy/base/rbac.yaml). They are made with the
kernel's own (kubeconfig) credentials the first time a plugin calls a cluster in this process,
and brought up to date when the permissions differ (an approved update). Provisioning is
lazy at boot on purpose: boot must not wait on every cluster, an unreachable cluster must not
block the bot, and a cluster added later gets identities without a restart. A plugin an admin
enables while the kernel runs is provisioned at once, in the background, so its RBAC is there
(and a refusal is logged) before it first acts.

The plugin's requests then carry a short-lived TokenRequest token of its ServiceAccount, and
nothing of the kernel's credentials (no token, no client certificate). A token is cached,
replaced at 80% of its lifetime, and replaced once more if the cluster answers 401 anyway
(the ServiceAccount was recreated, the clock is off). So a call outside the declared
permissions is refused twice: in-process by ``calls.check_declared``, and by the API server.

A plugin may narrow a permission it declares to named objects at run time
(``ctx.kubernetes.narrow``, :mod:`clustercord.kubernetes.narrowing`): the narrowing is stored
by the kernel and compiled, as ``resourceNames``, into every provisioning of its ClusterRole
(at first use, enable, update, after a 401); a change re-provisions it on every registered
cluster at once.

Disabling a plugin deletes its ClusterRoleBinding and ClusterRole on every cluster (the
ServiceAccount stays, powerless); enabling it again recreates them on next use.

Where the kernel's credentials may not manage RBAC (403), the plugin is refused on that
cluster with a message saying so, and a warning is logged: falling back to the kernel's own
credentials would hand the plugin more than it declared.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from clustercord.kubernetes import narrowing
from clustercord.kubernetes.calls import ApiStatusError
from clustercord.kubernetes.narrowing import Narrowings
from clustercord.kubernetes.service import KubernetesService
from clustercord_sdk.errors import CommandError
from clustercord_sdk.permissions import Permission, compile_rules, parse_permission

log = logging.getLogger("clustercord.kubernetes.identity")

NAMESPACE = "clustercord-system"
MANAGED_BY = {"app.kubernetes.io/managed-by": "clustercord"}
RBAC = "/apis/rbac.authorization.k8s.io/v1"
TOKEN_SECONDS = 3600
REFRESH_FRACTION = 0.8
# Configuration attributes that carry the kernel's credentials; a plugin's client has none.
_CREDENTIALS = ("api_key", "api_key_prefix")
_CREDENTIAL_FILES = ("cert_file", "key_file", "username", "password", "refresh_api_key_hook")
# Subresources opened as a WebSocket stream (an upgraded GET).
_STREAMS = frozenset({("pods", "exec"), ("pods", "attach"), ("pods", "portforward")})


class PluginIdentityError(CommandError):
    """A plugin's identity could not be set up on a cluster; the plugin is refused there."""


def service_account_name(plugin: str) -> str:
    return f"plugin-{plugin}"


def role_name(plugin: str) -> str:
    return f"clustercord:plugin:{plugin}"


def role_permissions(permissions: Iterable[Permission | str]) -> list[Permission]:
    """The declared permissions, with ``get`` beside each ``create`` of a stream subresource.

    ``pods/exec`` (attach, portforward) goes over a WebSocket, whose handshake is a GET: the
    API server authorizes it as ``get`` (and since 1.31 as ``create`` too), so ``create``
    alone, what ``pods/exec:create`` means in RBAC, would be refused. ``get`` on these
    subresources grants nothing but opening that same stream, which was declared.
    """
    parsed = [p if isinstance(p, Permission) else parse_permission(p) for p in permissions]
    implied = [
        Permission(p.resource, p.group, p.subresource, "get")
        for p in parsed
        if (p.resource, p.subresource) in _STREAMS and not p.group and "create" in p.verbs
    ]
    return parsed + implied


def identity_objects(
    plugin: str,
    permissions: Iterable[Permission | str],
    namespace: str = NAMESPACE,
    narrowed: Mapping[Permission, Sequence[str]] | None = None,
) -> list[tuple[str, str, dict[str, Any]]]:
    """``(collection path, name, object)`` of everything a plugin's identity consists of,
    in the order they must exist. ``narrowed``: declared permissions limited to names."""
    labels = {**MANAGED_BY, "clustercord.dev/plugin": plugin}
    account, role = service_account_name(plugin), role_name(plugin)
    return [
        (
            "/api/v1/namespaces",
            namespace,
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        ),
        (
            f"/api/v1/namespaces/{namespace}/serviceaccounts",
            account,
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": account, "namespace": namespace, "labels": labels},
            },
        ),
        (
            f"{RBAC}/clusterroles",
            role,
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": role, "labels": labels},
                "rules": compile_rules(role_permissions(permissions), narrowed),
            },
        ),
        (
            f"{RBAC}/clusterrolebindings",
            role,
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": role, "labels": labels},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": role,
                },
                "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
            },
        ),
    ]


@dataclass
class IssuedToken:
    """A plugin's current token on one cluster and when to replace it."""

    value: str
    expires_at: float
    refresh_at: float


class PluginIdentities:
    """The per-plugin ServiceAccounts, their RBAC and tokens, over a :class:`KubernetesService`.

    The blocking methods run in worker threads (as every client call does); one lock per
    cluster and plugin keeps concurrent calls from requesting a token each.
    """

    def __init__(
        self,
        service: KubernetesService,
        *,
        namespace: str = NAMESPACE,
        token_seconds: int = TOKEN_SECONDS,
        refresh_fraction: float = REFRESH_FRACTION,
        clock: Callable[[], float] = time.time,
        narrowings: Narrowings | None = None,
    ) -> None:
        self.service = service
        self.narrowings = narrowings if narrowings is not None else Narrowings()
        self.namespace = namespace
        self.token_seconds = token_seconds
        self.refresh_fraction = refresh_fraction
        self.clock = clock
        self._tokens: dict[tuple[str, str], IssuedToken] = {}
        self._clients: dict[tuple[str, str], Any] = {}
        # What was provisioned per (cluster, plugin) in this process: the permissions and
        # their narrowings.
        self._ensured: dict[tuple[str, str], tuple[Any, ...]] = {}
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()
        self._pending: set[asyncio.Task[None]] = set()
        self.provision_on_enable = False
        """Set by the kernel once booted: from then on ``enabled`` provisions every cluster."""

    # -- requests as the plugin -------------------------------------------------------------
    def request(
        self,
        cluster: str,
        plugin: str,
        permissions: tuple[Permission, ...],
        method: str,
        path: str,
        **kwargs: Any,
    ) -> Any:
        """``KubernetesService.request`` as the plugin's ServiceAccount (blocking). A 401 gets
        one fresh token and one more try; the second 401 is the caller's to report."""
        client = self.client(cluster, plugin, permissions)
        try:
            return self.service.request(cluster, method, path, client=client, **kwargs)
        except ApiStatusError as error:
            if error.status != 401:
                raise
        self.invalidate(cluster, plugin)
        client = self.client(cluster, plugin, permissions)
        return self.service.request(cluster, method, path, client=client, **kwargs)

    def client(self, cluster: str, plugin: str, permissions: tuple[Permission, ...]) -> Any:
        """An API client that authenticates as the plugin's ServiceAccount and as nothing
        else, its token fresh (provisioning the identity first if needed)."""
        key = (cluster, plugin)
        with self._lock(key):
            self.ensure(cluster, plugin, permissions)  # at once after an approved update
            token = self._tokens.get(key)
            if token is None or self.clock() >= token.refresh_at:
                token = self._request_token(cluster, plugin, permissions)
                self._tokens[key] = token
            client = self._clients.get(key)
            if client is None:
                from kubernetes.client import ApiClient  # imported on first use: it is slow

                client = self._clients[key] = ApiClient(self._bare_configuration(cluster))
            client.configuration.api_key["authorization"] = f"Bearer {token.value}"
            return client

    def token(self, cluster: str, plugin: str) -> IssuedToken | None:
        """The token a plugin currently uses on a cluster, if any (for status and tests)."""
        return self._tokens.get((cluster, plugin))

    def invalidate(self, cluster: str, plugin: str) -> None:
        """Forget a plugin's token (and what was provisioned) so the next call starts over."""
        self._tokens.pop((cluster, plugin), None)
        self._ensured.pop((cluster, plugin), None)

    def _lock(self, key: tuple[str, str]) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def _bare_configuration(self, cluster: str) -> Any:
        """The kernel's client configuration for `cluster` (server, CA, proxy, TLS name)
        without any of its credentials."""
        configuration = copy.deepcopy(self.service.client(cluster).configuration)
        for name in _CREDENTIALS:
            setattr(configuration, name, {})
        for name in _CREDENTIAL_FILES:
            setattr(configuration, name, None)
        return configuration

    def _request_token(
        self, cluster: str, plugin: str, permissions: tuple[Permission, ...]
    ) -> IssuedToken:
        path = (
            f"/api/v1/namespaces/{self.namespace}/serviceaccounts/"
            f"{service_account_name(plugin)}/token"
        )
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": self.token_seconds},
        }
        asked = self.clock()
        try:
            answer = self.service.request(cluster, "POST", path, body=body)
        except ApiStatusError as error:
            if error.status == 404:  # the ServiceAccount was deleted behind our back
                self._ensured.pop((cluster, plugin), None)
                self.ensure(cluster, plugin, permissions)
                answer = self.service.request(cluster, "POST", path, body=body)
            elif error.status == 403:
                raise self._refused(cluster, plugin, "requesting its token", error) from None
            else:
                raise
        status = answer.get("status") or {}
        lifetime = float(self.token_seconds)
        expires = _parse_time(status.get("expirationTimestamp"))
        if expires is not None:
            lifetime = max(expires - asked, 0.0)
        return IssuedToken(
            status["token"], asked + lifetime, asked + lifetime * self.refresh_fraction
        )

    # -- provisioning ---------------------------------------------------------------------
    def ensure(self, cluster: str, plugin: str, permissions: Iterable[Permission | str]) -> None:
        """Create or update the plugin's ServiceAccount, ClusterRole and ClusterRoleBinding
        (blocking, idempotent; skipped when already done for these permissions and
        narrowings here). The narrowings are read from storage each time: one a plugin made
        in another process of this instance is applied, never undone."""
        declared = tuple(permissions)
        parsed = [p if isinstance(p, Permission) else parse_permission(p) for p in declared]
        narrowed = self.narrowings.for_rules(plugin, parsed)
        done = (declared, tuple(sorted((str(p), n) for p, n in narrowed.items())))
        if self._ensured.get((cluster, plugin)) == done:
            return
        objects = identity_objects(plugin, declared, self.namespace, narrowed)
        for collection, name, wanted in objects:
            try:
                self._converge(cluster, collection, name, wanted)
            except ApiStatusError as error:
                if error.status == 403:
                    raise self._refused(cluster, plugin, f"creating {collection}", error) from None
                raise
        self._ensured[(cluster, plugin)] = done
        log.info("cluster %s: identity of plugin %s is up to date", cluster, plugin)

    def _converge(self, cluster: str, collection: str, name: str, wanted: dict[str, Any]) -> None:
        request = self.service.request
        try:
            current = request(cluster, "GET", f"{collection}/{name}")
        except ApiStatusError as error:
            if error.status != 404:
                raise
            current = self._create(cluster, collection, name, wanted)
        if wanted["kind"] == "Namespace":
            return  # an existing namespace is the admin's; nothing of ours to update
        if wanted["kind"] == "ClusterRoleBinding" and current.get("roleRef") != wanted["roleRef"]:
            # roleRef is immutable: replace the binding.
            request(cluster, "DELETE", f"{collection}/{name}")
            request(cluster, "POST", collection, body=wanted)
            return
        fields = [k for k in ("rules", "subjects") if k in wanted]
        labels = (current.get("metadata") or {}).get("labels") or {}
        wanted_labels = wanted["metadata"].get("labels") or {}
        if all(current.get(k) == wanted[k] for k in fields) and wanted_labels.items() <= (
            labels.items()
        ):
            return
        updated = {**current, **{k: wanted[k] for k in fields}}
        updated["metadata"] = {
            **current["metadata"],
            "labels": {**labels, **wanted_labels},
        }
        request(cluster, "PUT", f"{collection}/{name}", body=updated)

    def _create(
        self, cluster: str, collection: str, name: str, wanted: dict[str, Any]
    ) -> dict[str, Any]:
        """POST `wanted` (a ClusterRole without its rules) and return what the cluster holds.

        A ClusterRole is created empty and given its rules by the update that follows: the API
        server checks ``escalate`` against the name in the request's URL, which a create does
        not have, so a kernel granted ``escalate`` only on its plugins' role names
        (deploy/base/rbac.yaml) may write rules it does not hold by update only.
        """
        first = wanted
        if wanted["kind"] == "ClusterRole" and wanted.get("rules"):
            first = {**wanted, "rules": []}
        try:
            created = self.service.request(cluster, "POST", collection, body=first)
        except ApiStatusError as race:
            if race.status != 409:  # created meanwhile by another kernel: converge on it
                raise
            created = None
        if not isinstance(created, dict) or "metadata" not in created:
            created = self.service.request(cluster, "GET", f"{collection}/{name}")
        return created

    def _refused(
        self, cluster: str, plugin: str, doing: str, error: ApiStatusError
    ) -> PluginIdentityError:
        log.warning(
            "cluster %s: cannot set up the identity of plugin %s (%s: 403 Forbidden); "
            "the plugin is refused on this cluster",
            cluster,
            plugin,
            doing,
        )
        return PluginIdentityError(
            f"cluster {cluster}: ClusterCord could not set up plugin {plugin}'s own identity "
            f"({doing} was forbidden). The kubeconfig user needs to manage serviceaccounts in "
            f"{self.namespace}, clusterroles and clusterrolebindings, and create "
            "serviceaccounts/token; until then the plugin does not act on this cluster."
        )

    # -- disabling ------------------------------------------------------------------------
    async def revoke(self, plugin: str) -> None:
        """Delete the plugin's ClusterRoleBinding and ClusterRole on every cluster.

        A cluster that cannot be reached or refuses is logged, never raised: disabling a
        plugin must succeed even when a cluster is down (its tokens expire within the hour).
        """
        clusters = [c.name for c in self.service.registry.list()]
        await asyncio.gather(*(asyncio.to_thread(self._revoke, c, plugin) for c in clusters))

    def _revoke(self, cluster: str, plugin: str) -> None:
        self.invalidate(cluster, plugin)
        name = role_name(plugin)
        for collection in ("clusterrolebindings", "clusterroles"):
            try:
                self.service.request(cluster, "DELETE", f"{RBAC}/{collection}/{name}")
            except ApiStatusError as error:
                if error.status != 404:
                    log.warning(
                        "cluster %s: could not delete %s %s of disabled plugin %s: %s",
                        cluster,
                        collection,
                        name,
                        plugin,
                        error,
                    )
                    return
            except Exception as error:  # unreachable cluster: logged, disabling goes on
                log.warning(
                    "cluster %s: could not revoke plugin %s's RBAC: %s", cluster, plugin, error
                )
                return

    async def provision(self, plugin: str, permissions: Iterable[Permission]) -> None:
        """:meth:`ensure` on every cluster; failures are logged (the first call retries)."""
        clusters = [c.name for c in self.service.registry.list()]
        await self._ensure_on(clusters, plugin, tuple(permissions), "identity", "provisioned")

    async def _ensure_on(
        self,
        clusters: list[str],
        plugin: str,
        declared: tuple[Permission | str, ...],
        what: str,
        done: str,
    ) -> list[str]:
        """:meth:`ensure` on each cluster at once, each under the plugin's lock there (not at
        the same time as its first call); ``"ok"`` or why not per cluster, a failure logged
        ("cluster X: <what> of plugin P not <done>": the next provisioning retries)."""

        def ensure(cluster: str) -> str:
            try:
                with self._lock((cluster, plugin)):
                    self.ensure(cluster, plugin, declared)
            except Exception as error:
                log.warning(
                    "cluster %s: %s of plugin %s not %s: %s", cluster, what, plugin, done, error
                )
                return str(error) or type(error).__name__
            return "ok"

        return list(await asyncio.gather(*(asyncio.to_thread(ensure, c) for c in clusters)))

    def _in_background(self, work: Any) -> None:
        """Run ``work`` as a task :meth:`settle` (and so ``Kernel.aclose``) waits for."""
        task = asyncio.get_running_loop().create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def narrow(
        self,
        plugin: str,
        permissions: Sequence[Permission],
        permission: Any,
        names: Any,
        *,
        wait: bool = True,
    ) -> dict[str, Any]:
        """Narrow (``names=None``: lift) a permission the plugin declares to named objects,
        store it, and re-provision the plugin's ClusterRole on every registered cluster.

        Checked first (:func:`narrowing.check`; refused, nothing changes). Returns
        ``{"permission", "names", "changed", "clusters": {cluster: "ok" | "pending" | why}}``:
        with ``wait`` the clusters are done (a cluster that cannot be reached says why; its
        next provisioning applies the narrowing), without (for a hook, which must not wait
        on clusters) they are ``pending``, done in the background (:meth:`settle`)."""
        declared = tuple(permissions)
        checked, listed = narrowing.check(
            plugin, declared, role_permissions(declared), permission, names
        )
        answer: dict[str, Any] = {
            "permission": str(checked),
            "names": None if listed is None else list(listed),
            "changed": self.narrowings.set(plugin, checked, listed),
            "clusters": {},
        }
        if not answer["changed"]:
            return answer
        log.info(
            "plugin %s narrowed %s to %s",
            plugin,
            checked,
            "any name" if listed is None else (", ".join(listed) or "no name"),
        )

        try:
            clusters = [c.name for c in self.service.registry.list()]
        except Exception as error:  # no cluster to provision: stored, applied at first use
            log.warning("narrowing of plugin %s stored; clusters unreadable: %s", plugin, error)
            return answer
        applied = self._ensure_on(clusters, plugin, declared, "narrowing", "applied yet")
        if wait:
            answer["clusters"] = dict(zip(clusters, await applied, strict=True))
        else:
            self._in_background(applied)
            answer["clusters"] = dict.fromkeys(clusters, "pending")
        return answer

    def on_plugin_change(self, event: str, plugin: Any) -> None:
        """The plugin manager's listener: revoke on ``disabled``; provision on ``enabled``
        (once the kernel has booted). Both run as tasks; :meth:`settle` awaits them."""
        manifest = getattr(plugin, "manifest", None)
        if manifest is None or not manifest.permissions:
            return
        for key in [k for k in self._ensured if k[1] == plugin.name]:
            self._ensured.pop(key, None)
        if event == "disabled":
            work = self.revoke(plugin.name)
        elif event == "enabled" and self.provision_on_enable:
            work = self.provision(plugin.name, manifest.permissions)
        else:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(work)
            return
        self._in_background(work)

    async def settle(self) -> None:
        """Wait for revocations and provisioning still running (before answering an admin)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)


def _parse_time(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
