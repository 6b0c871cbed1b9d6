"""The sandbox's HTTP face: a Kubernetes API over aiohttp that the real kubectl accepts.

It is a sandbox for demos and tests, not a Kubernetes distribution: nothing runs container
images. What `kubectl exec`, `debug` and attach run in a pod runs in that pod's own Linux
namespaces (`isolation`), and port-forwards reach into them (`portforward`), or is refused
where the host cannot make them (`host_exec=True`,
the `--unsafe-host-exec` option, runs it on the host instead). It listens on 127.0.0.1 unless
told otherwise.

A request goes: authentication (bearer token) → impersonation → authorization (a pluggable
`Authorizer`, RBAC over the store's objects by default; see `auth.py`) → discovery / OpenAPI /
resource handler. Errors are `ApiError`s
turned into `Status` bodies, as the real server does.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from clustercord_sdk.rbac import Attributes, Decision, UserInfo

from . import discovery, errors, openapi_v2, protowire
from . import tls as tls_certs
from .auth import REVIEWS, AccessReviews, RBACAuthorizer, TokenAuthenticator, forbidden, impersonate
from .controllers import Controllers, start_controllers
from .ephemeral import EphemeralContainers
from .errors import ApiError
from .eviction import DisruptionController, PodEviction
from .isolation import Isolation, Limits
from .noderestart import NodeRestarts
from .objects import ListOptions, ObjectAPI, WriteOptions
from .openapi import OpenAPIDocuments
from .openapi_v2 import OpenAPIV2
from .patch import JSON_PATCH, json_patch, merge_patch
from .podexec import PodExec
from .podlogs import PodLogs
from .portforward import PodPortForward
from .registry import Registry, ResourceType, default_registry
from .resource_request import ResourceRequest, SubresourceHandler, query_flag
from .selectors import field_predicate, label_predicate
from .store import SandboxStore, WatchEvent
from .tables import to_table, wants_table
from .tokens import MIN_EXPIRATION_SECONDS, TOKEN_REVIEW, ServiceAccountTokens

ADMIN_USER = "sandbox-admin"
EVENT_TTL = 3600.0  # the API server's --event-ttl default (1h)
log = logging.getLogger(__name__)


# The SDK's RBAC types, so the RBAC library can be plugged in as the authorizer as is.
Authorizer = Callable[[UserInfo, Attributes], bool]


def allow_all(user: UserInfo, attributes: Attributes) -> bool:
    """An authorizer that allows everything, for callers that want no RBAC at all."""
    return True


class SandboxServer:
    """The API server: `await start()`, use `.url` / `write_kubeconfig()`, `await stop()`."""

    def __init__(
        self,
        store: SandboxStore | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        registry: Registry | None = None,
        authorizer: Authorizer | None = None,
        admin_token: str | None = None,
        bookmark_interval: float = 30.0,
        tls: bool = True,
        min_token_seconds: int = MIN_EXPIRATION_SECONDS,
        host_exec: bool = False,
        pod_limits: Limits | None = None,
        event_ttl: float = EVENT_TTL,
    ) -> None:
        if event_ttl <= 0:
            raise ValueError(f"event_ttl must be positive, not {event_ttl}")
        self.store = store if store is not None else SandboxStore()
        # Events live `event_ttl` seconds after their last write (the API server's --event-ttl).
        self.event_ttl = event_ttl
        for group in ("", "events.k8s.io"):
            self.store.set_ttl(group, "events", event_ttl)
        self._expiry: asyncio.Task[None] | None = None
        self.registry = registry or default_registry()
        self.api = ObjectAPI(self.store, self.registry)
        self.openapi = OpenAPIDocuments(self.registry)
        self.openapi_v2 = OpenAPIV2(self.registry)
        self.host, self.port = host, port
        self.rbac = RBACAuthorizer(self.store)
        self.authorizer: Authorizer = authorizer or self.rbac
        self.authenticator = TokenAuthenticator()
        self.admin_token = admin_token or secrets.token_urlsafe(32)
        self.add_token(self.admin_token, UserInfo.authenticated(ADMIN_USER, ("system:masters",)))
        # ServiceAccount tokens: issued by serviceaccounts/token, accepted as bearer tokens.
        self.tokens = ServiceAccountTokens(
            self.store, _review_body, min_expiration_seconds=min_token_seconds
        )
        self.authenticator.validators.append(self.tokens.authenticate)
        if self.registry.lookup("authentication.k8s.io", "v1", "tokenreviews") is None:
            self.registry.add(TOKEN_REVIEW)
        self.reviews = AccessReviews(
            self._decide,
            lambda: self.rbac.snapshot,
            lambda spec: self.tokens.review(spec, self.authenticator.user_for),
        )
        self.bookmark_interval = bookmark_interval
        # kubectl sends bearer tokens only over TLS, hence HTTPS by default.
        self.certificate = tls_certs.generate([host]) if tls else None
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self.controllers: Controllers | None = None
        # Subresources with their own semantics, keyed "plural/subresource" or "*/subresource".
        # `status` needs no entry: it is a plain get/update/patch of part of the object.
        self.subresources: dict[str, SubresourceHandler] = {"*/scale": self._scale}
        self._watches: set[asyncio.Queue[WatchEvent]] = set()  # the open watch streams
        self.subresources["serviceaccounts/token"] = self.tokens.handle
        # Pod subresources (logs, exec, eviction, ephemeral containers) live in their own modules.
        self.pod_logs = PodLogs(self.api, lambda: self._closing.is_set())
        self.subresources["pods/log"] = self.pod_logs.handle
        # Pods' processes: in namespaces of their own, or (host_exec) unsafely on the host.
        self.isolation = Isolation(host_exec=host_exec, limits=pod_limits)
        self.pod_processes = ""  # what start() found: printed by the command line
        self._pod_reaper: asyncio.Task[None] | None = None
        pod_exec = PodExec(self.api, self._authorize, isolation=self.isolation)
        self.subresources["pods/exec"] = pod_exec.handle
        self.subresources["pods/attach"] = pod_exec.attach
        self.subresources["pods/portforward"] = PodPortForward(pod_exec).handle
        self.evictions = PodEviction(self.api, _body)
        self.subresources["pods/eviction"] = self.evictions.handle
        self.subresources["pods/ephemeralcontainers"] = EphemeralContainers(self.api, _body).handle
        self.disruption: DisruptionController | None = None  # started with the server
        self.node_restarts: NodeRestarts | None = None

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        scheme = "https" if self.certificate else "http"
        return f"{scheme}://{self.host}:{self.port}"

    async def start(self) -> None:
        self._closing = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        ssl_context = self.certificate.ssl_context() if self.certificate else None
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=ssl_context)
        await site.start()
        if self.port == 0:
            server = site._server
            assert server is not None and server.sockets
            self.port = server.sockets[0].getsockname()[1]
        # Deployments become ReplicaSets and running Pods, as on a real cluster.
        self.controllers = start_controllers(
            self.api,
            self.store,
            ca_pem=self.certificate.ca_pem if self.certificate else b"",
            api_endpoint=(self.host, self.port),
        )
        # PodDisruptionBudget status, kept current as kube-controller-manager does.
        self.disruption = DisruptionController(self.evictions, self.store)
        self.disruption.start()
        # A privileged hostPID pod that reboots its node: the node's reboot, modelled.
        self.node_restarts = NodeRestarts(self.controllers).start()
        self.pod_processes = await self.isolation.start()
        if self.isolation.refusal() is not None or self.isolation.host_exec:
            log.warning("%s", self.pod_processes)
        self._pod_reaper = asyncio.ensure_future(self._reap_pods(self.store.subscribe()))
        self._expiry = asyncio.ensure_future(self._expire_leases())

    async def _expire_leases(self) -> None:
        """Deletes Events whose lease ran out (checked a few times per TTL, at most each
        second), as etcd expires the API server's event leases."""
        interval = min(1.0, self.event_ttl / 4)
        while True:
            await asyncio.sleep(interval)
            self.store.expire()

    async def _reap_pods(self, queue: asyncio.Queue[WatchEvent]) -> None:
        """A deleted pod's processes end with it (its namespaces' init is killed)."""
        try:
            while True:
                event = await queue.get()
                if event.plural == "pods" and event.group == "" and event.type == "DELETED":
                    meta = event.object.get("metadata") or {}
                    await self.isolation.release(
                        meta.get("namespace", ""), meta.get("name", ""), meta.get("uid")
                    )
        finally:
            self.store.unsubscribe(queue)

    async def stop(self) -> None:
        self._closing.set()
        if self._expiry is not None:
            self._expiry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._expiry
            self._expiry = None
        if self._pod_reaper is not None:
            self._pod_reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pod_reaper
            self._pod_reaper = None
        await self.isolation.stop()
        if self.node_restarts is not None:
            await self.node_restarts.stop()
            self.node_restarts = None
        if self.disruption is not None:
            await self.disruption.stop()
            self.disruption = None
        if self.controllers is not None:
            await self.controllers.stop()
            self.controllers = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def kubeconfig(self, namespace: str = "default") -> dict[str, Any]:
        cluster: dict[str, Any] = {"server": self.url}
        if self.certificate:
            ca = base64.b64encode(self.certificate.ca_pem).decode()
            cluster["certificate-authority-data"] = ca
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "sandbox", "cluster": cluster}],
            "users": [{"name": ADMIN_USER, "user": {"token": self.admin_token}}],
            "contexts": [
                {
                    "name": "sandbox",
                    "context": {"cluster": "sandbox", "user": ADMIN_USER, "namespace": namespace},
                }
            ],
            "current-context": "sandbox",
            "preferences": {},
        }

    def write_kubeconfig(self, path: str | Path) -> Path:
        """Writes a kubeconfig (0600: it holds the admin token) and returns its path."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch(mode=0o600, exist_ok=True)
        target.chmod(0o600)
        target.write_text(yaml.safe_dump(self.kubeconfig(), sort_keys=False))
        return target

    def add_token(self, token: str, user: UserInfo) -> None:
        """Lets `token` authenticate as `user` (tests and fixtures create users this way)."""
        self.authenticator.add(token, user)

    # -- request pipeline ------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            user = self.authenticator.authenticate(request.headers)
            user = impersonate(user, request.headers, self._decide)
            return await self._route(request, user)
        except ApiError as exc:
            return _json(exc.status(), exc.code)

    def _decide(self, user: UserInfo, attributes: Attributes) -> Decision:
        if self.authorizer is self.rbac:
            return self.rbac.decide(user, attributes)
        return Decision(bool(self.authorizer(user, attributes)), "")

    def _authorize(self, user: UserInfo, attributes: Attributes) -> None:
        decision = self._decide(user, attributes)
        if not decision.allowed:
            raise forbidden(user, attributes, decision)

    async def _route(self, request: web.Request, user: UserInfo) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if parts[:1] == ["api"] and len(parts) >= 2:
            return await self._resource(request, user, "", parts[1], parts[2:])
        if parts[:1] == ["apis"] and len(parts) >= 3:
            return await self._resource(request, user, parts[1], parts[2], parts[3:])
        verb = request.method.lower()
        self._authorize(user, Attributes.non_resource(verb, request.path))
        if request.method != "GET":
            raise errors.method_not_supported(
                f"{request.method} is not supported on {request.path}"
            )
        return self._non_resource(request, parts)

    def _non_resource(self, request: web.Request, parts: list[str]) -> web.StreamResponse:
        if parts == ["version"]:
            return _json(discovery.version_info())
        if parts == [".well-known", "openid-configuration"]:
            return _json(self.tokens.openid_configuration())
        if parts == ["openid", "v1", "jwks"]:
            return _json(self.tokens.jwks())
        if parts == ["api"]:
            return _json(discovery.core_versions())
        if parts == ["apis"]:
            return _json(discovery.group_list(self.registry))
        if len(parts) == 2 and parts[0] == "apis":
            group = discovery.group(self.registry, parts[1])
            if group is not None:
                return _json(group)
        if parts in (["healthz"], ["livez"], ["readyz"]):
            return web.Response(text="ok")
        if parts == ["openapi", "v2"]:
            # kubectl asks for protobuf only (to validate a `kind: List`); others for JSON.
            if openapi_v2.PROTOBUF in request.headers.get("Accept", ""):
                return web.Response(
                    body=self.openapi_v2.protobuf(),
                    headers={"Content-Type": openapi_v2.PROTOBUF_CONTENT_TYPE},
                )
            return web.Response(body=self.openapi_v2.json(), content_type="application/json")
        if parts[:2] == ["openapi", "v3"]:
            if len(parts) == 2:
                return _json(self.openapi.discovery())
            body = self.openapi.document("/".join(parts[2:]))
            if body is not None:
                return web.Response(body=body, content_type="application/json")
        raise ApiError(404, "NotFound", "the server could not find the requested resource", {})

    # -- resources -------------------------------------------------------------------------
    def _parse(self, group: str, version: str, rest: list[str]) -> ResourceRequest | None:
        namespace = ""
        # /namespaces/{ns}/{plural}... unless {plural} is a namespace subresource.
        if (
            len(rest) >= 3
            and rest[0] == "namespaces"
            and self.registry.lookup(group, version, rest[2]) is not None
        ):
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            return None
        rt = self.registry.lookup(group, version, rest[0])
        if rt is None:
            return None
        name = rest[1] if len(rest) >= 2 else ""
        subresource = rest[2] if len(rest) == 3 else ""
        return ResourceRequest(rt, namespace, name, subresource)

    async def _resource(
        self, request: web.Request, user: UserInfo, group: str, version: str, rest: list[str]
    ) -> web.StreamResponse:
        if not rest:
            body = discovery.resource_list(self.registry, group, version)
            if body is None:
                raise ApiError(
                    404, "NotFound", "the server could not find the requested resource", {}
                )
            self._authorize(user, Attributes.non_resource("get", request.path))
            return _json(body)
        req = self._parse(group, version, rest)
        if req is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        query = request.query
        watch = query_flag(query, "watch")
        verb = _verb(request.method, bool(req.name), watch)
        self._authorize(
            user,
            Attributes(
                verb,
                resource=req.rt.plural,
                api_group=group,
                subresource=req.subresource,
                name=req.name,
                namespace=req.namespace,
                path=request.path,
            ),
        )
        if (group, req.rt.plural) in REVIEWS:
            return await self._review(request, req, user)
        if req.subresource and req.subresource != "status":
            special = self.subresources.get(
                f"{req.rt.plural}/{req.subresource}"
            ) or self.subresources.get(f"*/{req.subresource}")
            if special is not None and req.subresource in req.rt.subresources:
                return await special(request, req, user)
            if req.subresource in req.rt.subresources:
                raise errors.method_not_supported(
                    f"{req.rt.plural}/{req.subresource} is not implemented by the ClusterCord "
                    "sandbox yet"
                )
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        handler = {
            "get": self._get,
            "list": self._list,
            "watch": self._watch,
            "create": self._create,
            "update": self._update,
            "patch": self._patch,
            "delete": self._delete,
            "deletecollection": self._delete_collection,
        }.get(verb)
        if handler is None:
            raise errors.method_not_supported(f"{request.method} is not supported")
        return await handler(request, req)

    async def _review(
        self, request: web.Request, req: ResourceRequest, user: UserInfo
    ) -> web.StreamResponse:
        """Access and identity reviews: answered for `user`, echoed back, never stored."""
        if request.method != "POST" or req.name or req.subresource:
            raise errors.method_not_supported(f"{request.method} is not supported")
        rt = req.rt
        body = await _review_body(request)
        answer = self.reviews.answer(rt.plural, rt.kind, rt.api_version, user, req.namespace, body)
        return _json(answer, 201)

    async def _get(self, request: web.Request, req: ResourceRequest) -> web.StreamResponse:
        obj = self.api.get(req.rt, req.namespace, req.name)
        if wants_table(request.headers.get("Accept", "")):
            rv = obj["metadata"]["resourceVersion"]
            return _json(to_table(req.rt, [obj], {"resourceVersion": rv}, self.store))
        return _json(obj)

    async def _list(self, request: web.Request, req: ResourceRequest) -> web.StreamResponse:
        namespace = req.namespace if req.rt.namespaced and req.namespace else None
        items, meta = self.api.list(req.rt, namespace, _list_options(request))
        if wants_table(request.headers.get("Accept", "")):
            return _json(to_table(req.rt, items, meta, self.store))
        return _json(
            {
                "kind": f"{req.rt.kind}List",
                "apiVersion": req.rt.api_version,
                "metadata": meta,
                "items": items,
            }
        )

    async def _create(self, request: web.Request, req: ResourceRequest) -> web.StreamResponse:
        if req.name:
            raise errors.method_not_supported("POST on a named object is not supported")
        options = _write_options(request)
        obj = self.api.create(req.rt, req.namespace, await _body(request), options)
        return _json(obj, 201, options.warnings)

    async def _update(self, request: web.Request, req: ResourceRequest) -> web.StreamResponse:
        options = _write_options(request)
        body = await _body(request)
        obj = self.api.update(req.rt, req.namespace, req.name, body, options, req.subresource)
        return _json(obj, 200, options.warnings)

    async def _patch(self, request: web.Request, req: ResourceRequest) -> web.StreamResponse:
        options = _write_options(request)
        patch_type = request.content_type
        patch = await _body(request)
        obj = self.api.patch(
            req.rt, req.namespace, req.name, patch_type, patch, options, req.subresource
        )
        return _json(obj, 200, options.warnings)

    async def _delete(self, request: web.Request, req: ResourceRequest) -> web.StreamResponse:
        body = await _body(request, optional=True) or {}
        dry_run = request.query.get("dryRun") == "All" or body.get("dryRun") == ["All"]
        policy = body.get("propagationPolicy") or request.query.get("propagationPolicy")
        obj = self.api.delete(
            req.rt, req.namespace, req.name, dry_run, body.get("preconditions"), policy
        )
        return _json(obj)

    async def _delete_collection(
        self, request: web.Request, req: ResourceRequest
    ) -> web.StreamResponse:
        namespace = req.namespace if req.rt.namespaced and req.namespace else None
        items, _ = self.api.list(req.rt, namespace, _list_options(request))
        dry_run = request.query.get("dryRun") == "All"
        deleted = [
            self.api.delete(
                req.rt, o["metadata"].get("namespace", ""), o["metadata"]["name"], dry_run
            )
            for o in items
        ]
        meta = {"resourceVersion": str(self.store.resource_version)}
        return _json(
            {
                "kind": f"{req.rt.kind}List",
                "apiVersion": req.rt.api_version,
                "metadata": meta,
                "items": deleted,
            }
        )

    async def _scale(
        self, request: web.Request, req: ResourceRequest, user: UserInfo
    ) -> web.StreamResponse:
        """`<workload>/scale` as an autoscaling/v1 Scale (kubectl scale patches it)."""
        if request.method in ("PUT", "PATCH"):
            body = await _body(request)
            if request.method == "PATCH":
                current = _scale_of(self.api.get(req.rt, req.namespace, req.name))
                if request.content_type == JSON_PATCH:
                    body = json_patch(current, body)
                else:
                    body = merge_patch(current, body)
            replicas = (body.get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise errors.invalid(
                    req.rt,
                    req.name,
                    [("spec.replicas", "FieldValueInvalid", "must be greater than or equal to 0")],
                )
            patch = {"spec": {"replicas": replicas}}
            self.api.patch(
                req.rt,
                req.namespace,
                req.name,
                "application/merge-patch+json",
                patch,
                _write_options(request),
                "scale",  # managedFields record the write under the scale subresource
            )
        elif request.method != "GET":
            raise errors.method_not_supported(f"{request.method} is not supported on scale")
        return _json(_scale_of(self.api.get(req.rt, req.namespace, req.name)))

    # -- watch -----------------------------------------------------------------------------
    async def _watch(self, request: web.Request, req: ResourceRequest) -> web.StreamResponse:
        query = request.query
        options = _list_options(request)
        labels = label_predicate(options.label_selector)
        fields = field_predicate(options.field_selector)
        rt = req.rt
        namespace = req.namespace if rt.namespaced and req.namespace else None
        table = wants_table(request.headers.get("Accept", ""))
        bookmarks = query_flag(query, "allowWatchBookmarks")
        timeout = float(query.get("timeoutSeconds", "0") or 0) or None
        start_rv = query.get("resourceVersion", "")

        queue = self.store.subscribe()
        self._watches.add(queue)
        try:
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            response.enable_chunked_encoding()
            await response.prepare(request)

            async def send(kind: str, obj: dict[str, Any]) -> None:
                if kind != "ERROR" and kind != "BOOKMARK":
                    obj = self.api.present(rt, obj)  # in the version watched
                if table and kind != "ERROR" and kind != "BOOKMARK":
                    rv = obj["metadata"]["resourceVersion"]
                    obj = to_table(rt, [obj], {"resourceVersion": rv}, self.store)
                await response.write(errors.encode({"type": kind, "object": obj}))

            def selected(obj: dict[str, Any]) -> bool:
                return labels(obj) and fields(obj)

            def seen(event: WatchEvent) -> tuple[str, dict[str, Any]] | None:
                if (
                    event.group != rt.group
                    or event.plural != rt.plural
                    or (namespace is not None and event.namespace != namespace)
                ):
                    return None
                return event.as_seen_by(selected)

            if start_rv in ("", "0"):
                for obj in self.store.list(rt.group, rt.plural, namespace):
                    if labels(obj) and fields(obj):
                        await send("ADDED", obj)
                last_rv = self.store.resource_version
            else:
                try:
                    last_rv = int(start_rv)
                except ValueError:
                    raise errors.bad_request(f"invalid resource version {start_rv!r}") from None
                if last_rv < self.store.oldest_watchable():
                    expired = errors.gone(
                        f"too old resource version: {last_rv} ({self.store.oldest_watchable()})"
                    )
                    await send("ERROR", expired.status())
                    return response
                for event in self.store.events_since(last_rv, rt.group, rt.plural, namespace):
                    if (change := seen(event)) is not None:
                        await send(*change)
                    last_rv = event.resource_version
            await self._stream(queue, send, seen, last_rv, bookmarks, timeout, rt)
            return response
        except ConnectionResetError:  # the client went away: nothing left to answer
            return response
        finally:
            self._watches.discard(queue)
            self.store.unsubscribe(queue)

    def end_watches(self) -> None:
        """Ends every open watch stream at once, as an API server restart does; clients
        resume from the last resourceVersion they saw. No later change reaches the ended
        streams (call it on the server's loop)."""
        for queue in list(self._watches):
            self.store.unsubscribe(queue)
            queue.put_nowait(_END_OF_WATCH)
        self._watches.clear()

    async def _stream(
        self,
        queue: asyncio.Queue[WatchEvent],
        send: Callable[[str, dict[str, Any]], Any],
        seen: Callable[[WatchEvent], tuple[str, dict[str, Any]] | None],
        last_rv: int,
        bookmarks: bool,
        timeout: float | None,
        rt: ResourceType,
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout else None
        next_bookmark = loop.time() + self.bookmark_interval
        while not self._closing.is_set():
            now = loop.time()
            if deadline is not None and now >= deadline:
                return
            wait = min(0.5, next_bookmark - now, (deadline - now) if deadline else 0.5)
            try:
                event = await asyncio.wait_for(queue.get(), max(wait, 0.01))
            except TimeoutError:
                event = None
            if event is _END_OF_WATCH:
                return
            fresh = event is not None and event.resource_version > last_rv
            if fresh and (change := seen(event)) is not None:  # type: ignore[arg-type]
                await send(*change)
            if bookmarks and loop.time() >= next_bookmark:
                marker = {
                    "kind": rt.kind,
                    "apiVersion": rt.api_version,
                    "metadata": {"resourceVersion": str(self.store.resource_version)},
                }
                await send("BOOKMARK", marker)
                next_bookmark = loop.time() + self.bookmark_interval


# -- helpers -------------------------------------------------------------------------------


# Queued to a watch stream by `end_watches`: the stream ends there.
_END_OF_WATCH = WatchEvent(-1, "END", "", "", "", {})


def _verb(method: str, named: bool, watch: bool) -> str:
    if method == "GET":
        return "watch" if watch else ("get" if named else "list")
    if method == "POST":
        return "create"
    if method == "PUT":
        return "update"
    if method == "PATCH":
        return "patch"
    if method == "DELETE":
        return "delete" if named else "deletecollection"
    return method.lower()


def _json(body: Any, status: int = 200, warnings: list[str] | None = None) -> web.Response:
    headers = {}
    if warnings:
        headers["Warning"] = ", ".join(f'299 - "{w.replace(chr(34), chr(39))}"' for w in warnings)
    return web.Response(
        body=errors.encode(body),
        status=status,
        content_type="application/json",
        headers=headers,
    )


async def _body(request: web.Request, optional: bool = False) -> Any:
    if "protobuf" in request.content_type:
        # kubectl's typed clients send protobuf and never retry in JSON: decode the kinds
        # `protowire` knows, answer 415 for the others.
        try:
            return protowire.decode(await request.read())
        except protowire.UnknownKind as exc:
            raise errors.ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types "
                f"include: application/json, application/yaml ({exc})",
            ) from exc
        except protowire.ProtobufError as exc:
            raise errors.bad_request(str(exc)) from exc
    raw = await request.read()
    if not raw:
        if optional:
            return None
        raise errors.bad_request("the request body is empty")
    try:
        if "yaml" in request.content_type:
            return yaml.safe_load(raw)
        return json.loads(raw)
    except (ValueError, yaml.YAMLError) as exc:
        raise errors.bad_request(f"the request body is not valid JSON: {exc}") from exc


async def _review_body(request: web.Request) -> Any:
    """A review's body: kubectl's typed client sends reviews as protobuf, others as JSON."""
    if "protobuf" not in request.content_type:
        return await _body(request)
    try:
        return protowire.decode(await request.read())
    except protowire.ProtobufError as exc:
        raise errors.bad_request(str(exc)) from exc


def _list_options(request: web.Request) -> ListOptions:
    query = request.query
    try:
        limit = int(query.get("limit", "0") or 0)
    except ValueError:
        raise errors.bad_request("limit must be an integer") from None
    return ListOptions(
        label_selector=query.get("labelSelector"),
        field_selector=query.get("fieldSelector"),
        limit=limit,
        continue_token=query.get("continue"),
    )


def _write_options(request: web.Request) -> WriteOptions:
    query = request.query
    validation = query.get("fieldValidation", "Warn")
    if validation not in ("Strict", "Warn", "Ignore"):
        raise errors.bad_request(
            f"fieldValidation must be Strict, Warn or Ignore, not {validation!r}"
        )
    return WriteOptions(
        dry_run="All" in query.getall("dryRun", []),
        field_validation=validation,
        field_manager=query.get("fieldManager", ""),
        user_agent=request.headers.get("User-Agent", ""),
        force=query_flag(query, "force"),
    )


def _scale_of(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    selector = (obj.get("spec", {}).get("selector") or {}).get("matchLabels") or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
            "creationTimestamp": meta.get("creationTimestamp"),
        },
        "spec": {"replicas": obj.get("spec", {}).get("replicas", 0)},
        "status": {
            "replicas": obj.get("status", {}).get("replicas", 0),
            "selector": ",".join(f"{k}={v}" for k, v in selector.items()),
        },
    }
