"""The Kubernetes service: one API client per cluster, and per-plugin views of it.

A plugin's view checks every call against the plugin's declared permissions before
anything leaves the process. When a chat user invoked the command, the view also
asks the cluster, with a SubjectAccessReview, whether the user's mapped Kubernetes
identity may do the same thing: the plugin's own rights never stretch a user's.
The local console operator (who already holds the kubeconfig) is not reviewed.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from clustercord.kubernetes.calls import (
    Action,
    ApiStatusError,
    call,
    check_declared,
    explain,
)
from clustercord.kubernetes.clusters import ClusterRegistry
from clustercord.kubernetes.identity import IdentityMap
from clustercord.policy import is_local_operator
from clustercord_sdk.context import Invocation
from clustercord_sdk.errors import CommandError, PermissionDenied, UsageError
from clustercord_sdk.kubernetes import ClusterInfo, ExecSession
from clustercord_sdk.permissions import Permission, covers, parse_permission

if TYPE_CHECKING:
    from clustercord.metrics import Metrics

_GET_POD = Permission("pods", "", None, "get")
_EXAMPLE = "['sh', '-c', 'echo hi']"
_PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
}


class PluginCredentials(Protocol):
    """What the service needs of the per-plugin identities (``plugin_identity.PluginIdentities``,
    which builds on this module): a client authenticated as the plugin, and forgetting its
    token after a 401. A Protocol, so this module does not import the one above it."""

    def client(self, cluster: str, plugin: str, permissions: tuple[Permission, ...]) -> Any: ...

    def invalidate(self, cluster: str, plugin: str) -> None: ...

    async def narrow(
        self,
        plugin: str,
        permissions: Sequence[Permission],
        permission: Any,
        names: Any,
        *,
        wait: bool = True,
    ) -> dict[str, Any]: ...


class KubernetesService:
    def __init__(
        self,
        registry: Callable[[], ClusterRegistry],
        identities: IdentityMap,
        *,
        timeout: float = 30.0,
    ) -> None:
        # The registry is built on first use: most commands never touch a cluster, and
        # building it reads kubeconfig files and the encryption key.
        self._registry_factory = registry
        self._registry: ClusterRegistry | None = None
        self.identities = identities
        self.timeout = timeout
        self._clients: dict[str, Any] = {}
        self._resources: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()
        # Set by the kernel: plugins then call clusters as their own ServiceAccounts
        # (plugin_identity.py). Left None, every plugin call is refused (never the kernel's own).
        self.plugin_identities: PluginCredentials | None = None
        # Set by the kernel: every request counted by cluster, verb and status.
        self.metrics: Metrics | None = None

    @property
    def registry(self) -> ClusterRegistry:
        if self._registry is None:
            self._registry = self._registry_factory()
        return self._registry

    def for_plugin(self, plugin: str, permissions: Iterable[Permission]) -> PluginKubernetes:
        return PluginKubernetes(self, plugin, tuple(permissions), None)

    # -- raw access (worker threads) ---------------------------------------------------
    def client(self, cluster: str) -> Any:
        with self._lock:
            client = self._clients.get(cluster)
            if client is None:
                client = self._clients[cluster] = self.registry.api_client(cluster)
            return client

    def request(
        self,
        cluster: str,
        method: str,
        path: str,
        *,
        query: Iterable[tuple[str, str]] = (),
        body: Any = None,
        content_type: str = "application/json",
        client: Any = None,
        text: bool = False,
    ) -> Any:
        """One HTTP call (blocking: run it in a thread). Raises :class:`ApiStatusError`.

        ``client`` replaces the kernel's own client (a plugin's, with the plugin's token).
        ``text`` returns the body as text (``pods/log``) instead of decoded JSON."""
        client = client if client is not None else self.client(cluster)
        headers = {"Accept": "application/json", "Content-Type": content_type}
        method, url, headers, payload, _ = client.param_serialize(
            method,
            path,
            query_params=list(query),
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = client.call_api(
                method, url, header_params=headers, body=payload, _request_timeout=self.timeout
            )
        except Exception:
            if self.metrics is not None:
                self.metrics.kubernetes_calls.labels(cluster, method, "error").inc()
            raise
        if self.metrics is not None:
            self.metrics.kubernetes_calls.labels(cluster, method, str(response.status)).inc()
        data = response.read()
        if response.status >= 400:
            raise ApiStatusError(response.status, response.reason, data, response.headers)
        if text:
            return data.decode("utf-8", errors="replace")
        return json.loads(data) if data else {}

    def resource_info(self, cluster: str, group: str, resource: str) -> dict[str, Any]:
        """Version and scope of a resource, from discovery (cached per cluster)."""
        key = (cluster, group)
        if key not in self._resources:
            if group:
                preferred = self.request(cluster, "GET", f"/apis/{group}")["preferredVersion"]
                group_version = preferred["groupVersion"]
                listing = self.request(cluster, "GET", f"/apis/{group_version}")
            else:
                group_version = "v1"
                listing = self.request(cluster, "GET", "/api/v1")
            self._resources[key] = {
                r["name"]: {
                    "groupVersion": group_version,
                    "namespaced": r["namespaced"],
                    "kind": r["kind"],
                }
                for r in listing["resources"]
            }
        found = self._resources[key].get(resource)
        if found is None:
            where = f"{resource}.{group}" if group else resource
            raise CommandError(f"cluster {cluster} does not serve {where}")
        return found  # type: ignore[no-any-return]


class PluginKubernetes:
    """A plugin's view of the service; ``acting_for`` binds the invoking user."""

    def __init__(
        self,
        service: KubernetesService,
        plugin: str,
        permissions: tuple[Permission, ...],
        invocation: Invocation | None,
    ) -> None:
        self.service = service
        self.plugin = plugin
        self.permissions = permissions
        self.invocation = invocation

    def acting_for(self, invocation: Invocation) -> PluginKubernetes:
        return PluginKubernetes(self.service, self.plugin, self.permissions, invocation)

    def clusters(self) -> list[ClusterInfo]:
        return [
            ClusterInfo(c.name, c.server, c.namespace, c.source)
            for c in self.service.registry.list()
        ]

    def target(self, cluster: str | None = None, namespace: str | None = None) -> tuple[str, str]:
        # A job or a hook has no invocation: the only cluster, as for a user with no choice.
        invocation = self.invocation
        return self.service.registry.target(
            cluster or (invocation.cluster if invocation is not None else None),
            namespace,
            user=invocation.user_id if invocation is not None else None,
        )

    # -- the calls -----------------------------------------------------------------------
    async def version(self, *, cluster: str | None = None) -> dict[str, Any]:
        name, _ = self.target(cluster)
        action = Action("get", "/version", cluster=name)
        answer: dict[str, Any] = await self._run(
            lambda: self._send(name, "GET", "/version"), action, check=False
        )
        return answer

    async def check(
        self,
        verb: str,
        resource: str,
        *,
        name: str | None = None,
        namespace: str | None = None,
        cluster: str | None = None,
    ) -> None:
        """The checks of a call (declared, and the invoking user's SubjectAccessReview)
        without the call: see the SDK's ``Kubernetes.check``."""
        if verb not in ("get", "list", "create", "patch", "delete"):
            raise UsageError(f"check: verb {verb!r} is not one of get, list, create, patch, delete")
        parsed = parse_permission(f"{resource}:get")
        cluster_name, default_namespace = self.target(cluster, namespace)
        service = self.service
        info = await call(
            lambda: service.resource_info(cluster_name, parsed.group, parsed.resource),
            Action("get", parsed.resource, parsed.group, cluster=cluster_name),
        )
        ns = (namespace or default_namespace) if info["namespaced"] else None
        action = Action(
            verb, parsed.resource, parsed.group, parsed.subresource, ns, name, cluster_name
        )
        check_declared(self.plugin, self.permissions, action)
        await self._review(action)

    async def get(
        self, resource: str, name: str, *, namespace: str | None = None, cluster: str | None = None
    ) -> dict[str, Any]:
        return await self._call("get", resource, name=name, namespace=namespace, cluster=cluster)

    async def list(
        self,
        resource: str,
        *,
        namespace: str | None = None,
        all_namespaces: bool = False,
        label_selector: str | None = None,
        field_selector: str | None = None,
        cluster: str | None = None,
    ) -> list[dict[str, Any]]:
        query = [
            (k, v)
            for k, v in (("labelSelector", label_selector), ("fieldSelector", field_selector))
            if v
        ]
        result = await self._call(
            "list",
            resource,
            namespace=namespace,
            cluster=cluster,
            query=query,
            all_namespaces=all_namespaces,
        )
        return list(result.get("items", []))

    async def create(
        self,
        resource: str,
        body: dict[str, Any],
        *,
        namespace: str | None = None,
        cluster: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        query = [("dryRun", "All")] if dry_run else []
        # A subresource (``pods/eviction``) is created on the object its body names.
        name = None
        if "/" in resource:
            name = (body.get("metadata") or {}).get("name") or None
            if not name:
                raise UsageError(f"creating {resource} needs metadata.name in the body")
        return await self._call(
            "create",
            resource,
            name=name,
            namespace=namespace,
            cluster=cluster,
            body=body,
            query=query,
        )

    async def patch(
        self,
        resource: str,
        name: str,
        body: Any,
        *,
        namespace: str | None = None,
        cluster: str | None = None,
        patch_type: str = "merge",
        subresource: str | None = None,
    ) -> dict[str, Any]:
        if patch_type not in _PATCH_TYPES:
            raise UsageError(f"patch_type {patch_type!r}: one of {', '.join(_PATCH_TYPES)}")
        return await self._call(
            "patch",
            resource,
            name=name,
            namespace=namespace,
            cluster=cluster,
            body=body,
            subresource=subresource,
            content_type=_PATCH_TYPES[patch_type],
        )

    async def apply(
        self,
        resource: str,
        body: dict[str, Any],
        *,
        field_manager: str,
        namespace: str | None = None,
        cluster: str | None = None,
        force: bool = False,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        name = (body.get("metadata") or {}).get("name")
        if not name:
            raise UsageError("server-side apply needs metadata.name in the body")
        if not field_manager:
            raise UsageError("server-side apply needs a field manager")
        query = [("fieldManager", field_manager)]
        if force:
            query.append(("force", "true"))
        if dry_run:
            query.append(("dryRun", "All"))
        return await self._call(
            "patch",
            resource,
            name=name,
            namespace=namespace,
            cluster=cluster,
            body=body,
            query=query,
            # JSON is YAML: the client sends the dict as JSON under this type.
            content_type="application/apply-patch+yaml",
        )

    async def delete(
        self,
        resource: str,
        name: str,
        *,
        namespace: str | None = None,
        cluster: str | None = None,
        grace_period: int | None = None,
    ) -> dict[str, Any]:
        query = [] if grace_period is None else [("gracePeriodSeconds", str(int(grace_period)))]
        return await self._call(
            "delete", resource, name=name, namespace=namespace, cluster=cluster, query=query
        )

    async def logs(
        self,
        name: str,
        *,
        namespace: str | None = None,
        cluster: str | None = None,
        container: str | None = None,
        tail_lines: int | None = None,
        since_seconds: int | None = None,
        limit_bytes: int | None = None,
        previous: bool = False,
        timestamps: bool = False,
    ) -> str:
        options = {
            "container": container,
            "tailLines": tail_lines,
            "sinceSeconds": since_seconds,
            "limitBytes": limit_bytes,
            "previous": "true" if previous else None,
            "timestamps": "true" if timestamps else None,
        }
        query = [(key, str(value)) for key, value in options.items() if value is not None]
        log: str = await self._call(  # type: ignore[assignment]
            "get",
            "pods/log",
            name=name,
            namespace=namespace,
            cluster=cluster,
            query=query,
            text=True,
        )
        return log

    async def exec(
        self,
        name: str,
        command: Sequence[str],
        *,
        namespace: str | None = None,
        cluster: str | None = None,
        container: str | None = None,
        stdin: bool = False,
        tty: bool = False,
    ) -> ExecSession:
        """``pods/exec`` as ``kubectl exec`` does it (see the SDK's ``Kubernetes.exec``):
        checked like every call, then a WebSocket as the plugin's ServiceAccount."""
        from clustercord.kubernetes.exec import Endpoint, connect, exec_query  # aiohttp: slow

        if isinstance(command, str) or not command:
            raise UsageError(f"exec: the command is a list of arguments, e.g. {_EXAMPLE}")
        cluster_name, ns = self.target(cluster, namespace)
        action = Action("create", "pods", "", "exec", ns, name, cluster_name)
        check_declared(self.plugin, self.permissions, action)
        await self._review(action)
        path = _path("v1", "pods", ns, name, "exec")
        query = exec_query(command, container=container, stdin=stdin, tty=tty)

        async def attempt(renew: bool) -> ExecSession:
            endpoint = await call(
                lambda: Endpoint.of(self._client(cluster_name, renew=renew), path, query),
                action,
                timeout=self.service.timeout,
                api_exception=ApiStatusError,
            )
            return await connect(
                endpoint,
                what=action.describe(),
                command=shlex.join(command),
                stdin=stdin,
                tty=tty,
                timeout=self.service.timeout,
            )

        try:
            try:
                return await attempt(renew=False)
            except ApiStatusError as error:
                # A 401 gets one fresh token, as PluginIdentities.request does for other calls.
                if error.status != 401:
                    raise
                return await attempt(renew=True)
        except ApiStatusError as error:
            raise await self._exec_refusal(error, action, container) from None

    async def _exec_refusal(
        self, error: ApiStatusError, action: Action, container: str | None
    ) -> CommandError:
        """The API server's refusal, explained; for a container the pod lacks, with the
        containers it has when the plugin may read the pod (it learns nothing more)."""
        refusal = explain(error, action)
        if error.status != 400 or not container or not covers(self.permissions, [_GET_POD]):
            return refusal
        assert action.name is not None
        try:
            pod = await self.get(
                "pods", action.name, namespace=action.namespace, cluster=action.cluster
            )
        except CommandError:  # the user may not read it: the refusal as it is
            return refusal
        spec = pod.get("spec") or {}
        names = [c["name"] for key in ("containers", "initContainers") for c in spec.get(key) or []]
        if container in names:
            return refusal
        return CommandError(f"{refusal} (its containers: {', '.join(names)})")

    async def impersonated(
        self,
        method: str,
        path: str,
        *,
        user: str,
        groups: Sequence[str] = (),
        uid: str | None = None,
        query: str = "",
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        cluster: str | None = None,
        stream: bool = False,
    ) -> tuple[int, dict[str, str], Any]:
        """One raw API request as the plugin's ServiceAccount impersonating ``user`` (see
        :mod:`clustercord.kubernetes.impersonation` for what is refused). With ``stream``
        the body is an async iterator of chunks (a watch), to ``aclose`` when done."""
        from clustercord.kubernetes import impersonation

        name, _ = self.target(cluster)
        impersonation.check(self.plugin, self.permissions, user, groups, path)
        timeout = self.service.timeout

        def send() -> impersonation.Answer:
            client = self._client(name)
            token = client.configuration.api_key["authorization"]
            sent = impersonation.headers_for(token, user, groups, uid, headers or {})
            return impersonation.send(
                client, method, path, query, sent, body, timeout, stream=stream
            )

        async def attempt() -> impersonation.Answer:
            if stream and impersonation.long_lived(path, query):
                # On the loop, not in a worker thread: open watches must not use up the
                # pool every other blocking call of the kernel shares.
                return await self._long_lived(
                    name, method, path, query, body, user, groups, uid, headers or {}
                )
            return await asyncio.wait_for(asyncio.to_thread(send), timeout + 5)

        answer = await attempt()
        if answer.status == 401:  # the plugin's token expired: one fresh one, once
            if answer.upstream is not None:
                await answer.upstream.aclose()
            await asyncio.to_thread(self._client, name, renew=True)
            answer = await attempt()
        if answer.upstream is not None:
            if answer.status >= 300:  # an error is a short body: read it whole
                chunks = [chunk async for chunk in answer.upstream]
                return answer.status, answer.headers, b"".join(chunks)
            return answer.status, answer.headers, answer.upstream
        return answer.status, answer.headers, answer.body

    async def _long_lived(
        self,
        cluster: str,
        method: str,
        path: str,
        query: str,
        body: bytes,
        user: str,
        groups: Sequence[str],
        uid: str | None,
        passed: Mapping[str, str],
    ) -> Any:
        from urllib.parse import parse_qsl

        from clustercord.kubernetes import impersonation
        from clustercord.kubernetes.exec import Endpoint

        pairs = parse_qsl(query, keep_blank_values=True)
        found = await asyncio.to_thread(lambda: Endpoint.of(self._client(cluster), path, pairs))
        token = found.headers.get("Authorization") or found.headers.get("authorization", "")
        sent = impersonation.headers_for(token, user, groups, uid, passed)
        return await impersonation.open_long_lived(found, method, sent, body, self.service.timeout)

    async def impersonated_websocket(
        self,
        path: str,
        *,
        user: str,
        groups: Sequence[str] = (),
        uid: str | None = None,
        query: str = "",
        protocols: Sequence[str] = (),
        cluster: str | None = None,
    ) -> Any:
        """A WebSocket to the API server (``pods/NAME/exec``, ``attach``, ``portforward``) as
        the plugin's ServiceAccount impersonating ``user``; returns an open socket
        (``protocol``, ``receive``, ``send_bytes``, ``send_str``, ``close``) or, refused,
        ``(status, headers, body)``. Checked as :meth:`impersonated`."""
        from urllib.parse import parse_qsl

        from clustercord.kubernetes import impersonation
        from clustercord.kubernetes.exec import Endpoint

        name, _ = self.target(cluster)
        impersonation.check(self.plugin, self.permissions, user, groups, path)
        pairs = parse_qsl(query, keep_blank_values=True)

        def endpoint() -> Any:
            return Endpoint.of(self._client(name), path, pairs)

        found = await asyncio.to_thread(endpoint)
        token = found.headers.get("Authorization") or found.headers.get("authorization", "")
        sent = impersonation.headers_for(token, user, groups, uid, {})
        opened = await impersonation.open_websocket(
            found, sent, list(protocols), self.service.timeout
        )
        if isinstance(opened, impersonation.Answer):
            return opened.status, opened.headers, opened.body
        return opened

    async def narrow(
        self, permission: str, names: Sequence[str] | None, *, wait: bool = True
    ) -> dict[str, Any]:
        """Limit a declared permission to named objects on every cluster (see the SDK's
        ``Kubernetes.narrow``); the plugin's own rights, whoever invoked the command."""
        if not isinstance(wait, bool):
            raise UsageError("narrow: wait is true or false")
        identities = self._identities()
        return await identities.narrow(self.plugin, self.permissions, permission, names, wait=wait)

    # -- plumbing --------------------------------------------------------------------------
    async def _call(
        self,
        verb: str,
        resource: str,
        *,
        name: str | None = None,
        namespace: str | None = None,
        cluster: str | None = None,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        subresource: str | None = None,
        all_namespaces: bool = False,
        content_type: str = "application/json",
        text: bool = False,
    ) -> dict[str, Any]:
        parsed = parse_permission(f"{resource}:get")  # the grammar names the resource
        subresource = subresource or parsed.subresource
        cluster_name, default_namespace = self.target(cluster, namespace)
        service = self.service

        def resolve() -> dict[str, Any]:
            return service.resource_info(cluster_name, parsed.group, parsed.resource)

        info = await call(
            resolve, Action("get", parsed.resource, parsed.group, cluster=cluster_name)
        )
        scoped = info["namespaced"] and not all_namespaces
        ns = (namespace or default_namespace) if scoped else None
        action = Action(verb, parsed.resource, parsed.group, subresource, ns, name, cluster_name)
        path = _path(info["groupVersion"], parsed.resource, ns, name, subresource)
        method = {
            "get": "GET",
            "list": "GET",
            "create": "POST",
            "patch": "PATCH",
            "delete": "DELETE",
        }[verb]
        return await self._run(  # type: ignore[no-any-return]
            lambda: self._send(
                cluster_name,
                method,
                path,
                query=query or (),
                body=body,
                content_type=content_type,
                text=text,
            ),
            action,
        )

    def _send(self, cluster: str, method: str, path: str, **kwargs: Any) -> Any:
        """One request as the plugin's own ServiceAccount (blocking: in a worker thread)."""
        identities = self._identities()
        return identities.request(cluster, self.plugin, self.permissions, method, path, **kwargs)

    def _client(self, cluster: str, *, renew: bool = False) -> Any:
        """The API client the plugin's calls go with (blocking: it may request a token).
        ``renew`` drops the plugin's token first, after the cluster answered 401."""
        identities = self._identities()
        if renew:
            identities.invalidate(cluster, self.plugin)
        return identities.client(cluster, self.plugin, self.permissions)

    def _identities(self) -> PluginCredentials:
        """Whose credentials the plugin's calls carry: always its own ServiceAccount's. The
        kernel's credentials never serve a plugin: a plugin that declares no Kubernetes
        permission has no ServiceAccount, so no cluster access at all (not even
        ``/version``), and without plugin identities every plugin call is refused."""
        if not self.permissions:
            raise PermissionDenied(
                f"plugin {self.plugin} declares no Kubernetes permission: it has no access to "
                "clusters"
            )
        identities = self.service.plugin_identities
        if identities is None:
            raise CommandError(
                f"plugin {self.plugin}: this kernel runs without per-plugin identities, and "
                "the kernel's own credentials never serve a plugin"
            )
        return identities

    async def _run(self, function: Any, action: Action, *, check: bool = True) -> Any:
        if check:
            check_declared(self.plugin, self.permissions, action)
            await self._review(action)
        return await call(
            function, action, timeout=self.service.timeout, api_exception=ApiStatusError
        )

    async def _review(self, action: Action) -> None:
        """Ask the cluster whether the invoking user's own identity may do this."""
        invocation = self.invocation
        if invocation is None or is_local_operator(invocation):
            return
        identity = self.service.identities.resolve(invocation.user_id, invocation.roles)
        attributes = {"verb": action.verb, "group": action.group, "resource": action.resource}
        for key, value in (
            ("subresource", action.subresource),
            ("namespace", action.namespace),
            ("name", action.name),
        ):
            if value:
                attributes[key] = value
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": identity.user,
                "groups": list(identity.groups),
                "resourceAttributes": attributes,
            },
        }
        cluster = action.cluster or ""
        answer = await call(
            lambda: self.service.request(
                cluster, "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", body=review
            ),
            replace(
                action,
                verb="create",
                resource="subjectaccessreviews",
                group="authorization.k8s.io",
                name=None,
                namespace=None,
            ),
            api_exception=ApiStatusError,
        )
        if not answer.get("status", {}).get("allowed"):
            raise PermissionDenied(
                f"your Kubernetes identity {identity.user} may not {action.describe()}"
            )


def _path(
    group_version: str,
    resource: str,
    namespace: str | None,
    name: str | None,
    subresource: str | None,
) -> str:
    base = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
    if namespace:
        base += f"/namespaces/{quote(namespace, safe='')}"
    base += f"/{resource}"
    if name:
        base += f"/{quote(name, safe='')}"
    if subresource:
        base += f"/{subresource}"
    return base
