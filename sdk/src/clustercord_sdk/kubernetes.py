"""The Kubernetes service as a plugin sees it (``ctx.kubernetes`` in a command).

Resources are named as in permissions: ``pods``, ``deployments.apps``, ``pods/log``.
Every call is checked first against the plugin's declared permissions (in-process,
with a message naming what to declare) and, when a chat user invoked the command,
against that user's own Kubernetes identity with a SubjectAccessReview: a user never
does more through a plugin than their mapped identity may. Calls reach the cluster as the
plugin's own ServiceAccount (``clustercord-system/plugin-<name>``, bound to a ClusterRole of
exactly the declared permissions, with short-lived tokens), so the API server refuses what the
manifest does not declare too. Errors arrive as
:class:`~clustercord_sdk.errors.CommandError` with a message meant for people.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol


@dataclass(frozen=True)
class ClusterInfo:
    name: str
    server: str
    namespace: str
    """The default namespace of the cluster's context."""
    source: str


DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"


def default_container(pod: dict[str, Any]) -> tuple[str | None, list[str]]:
    """The container ``kubectl logs`` or ``exec`` would pick in ``pod`` when none is named
    (the annotated default, else the first), and the names of the others."""
    names = [c["name"] for c in pod.get("spec", {}).get("containers", [])]
    annotated = (pod.get("metadata", {}).get("annotations") or {}).get(DEFAULT_CONTAINER_ANNOTATION)
    chosen = annotated if annotated in names else (names[0] if names else None)
    return chosen, [n for n in names if n != chosen]


Stream = Literal["stdout", "stderr"]


class ExecSession(Protocol):
    """A command running in a container (``pods/exec``), from :meth:`Kubernetes.exec`.

    Output is read chunk by chunk, as it comes (``async for stream, data in session``, or
    :meth:`read`); the iteration ends when the command has ended, and :attr:`exit_code` then
    holds its exit status. Leaving ``async with`` (or :meth:`close`) ends the session: the
    connection closes and the command is killed if it still runs.
    """

    @property
    def exit_code(self) -> int | None:
        """The command's exit status once it has ended (``None`` while it runs, or when the
        connection was lost before the cluster said)."""
        ...

    async def read(self, timeout: float | None = None) -> tuple[Stream, bytes] | None:
        """The next chunk of output as ``(stream, data)``; ``None`` once the command has
        ended. Raises ``TimeoutError`` when nothing came within ``timeout`` seconds (the
        session stays usable)."""
        ...

    async def write(self, data: str | bytes) -> None:
        """Send to the command's standard input (``str`` is encoded as UTF-8); needs
        ``stdin=True``."""
        ...

    async def close_stdin(self) -> None:
        """End of input: the command reads end-of-file."""
        ...

    async def resize(self, cols: int, rows: int) -> None:
        """The terminal's size in characters; needs ``tty=True``."""
        ...

    async def close(self) -> None: ...

    def __aiter__(self) -> AsyncIterator[tuple[Stream, bytes]]: ...

    async def __aenter__(self) -> ExecSession: ...

    async def __aexit__(self, *exc: object) -> None: ...


class Kubernetes(Protocol):
    def clusters(self) -> list[ClusterInfo]: ...

    def target(self, cluster: str | None = None, namespace: str | None = None) -> tuple[str, str]:
        """The cluster and namespace a call goes to: the given ones, else the invoking
        user's defaults (``/cluster use``), else the only cluster and its namespace."""
        ...

    async def version(self, *, cluster: str | None = None) -> dict[str, Any]: ...

    async def check(
        self,
        verb: str,
        resource: str,
        *,
        name: str | None = None,
        namespace: str | None = None,
        cluster: str | None = None,
    ) -> None:
        """Whether ``verb`` (``get``, ``list``, ``create``, ``patch``, ``delete``) on
        ``resource`` (``pods``, ``pods/eviction``, ``nodes``) is allowed, without doing it:
        declared by the plugin and, acting for a user, allowed to that user's own identity
        (a SubjectAccessReview). Raises :class:`~clustercord_sdk.errors.PermissionDenied`
        naming what is missing. For work that runs later as the plugin alone (after an
        admin's approval, in a job) or that must be refused before anything changes."""
        ...

    async def get(
        self, resource: str, name: str, *, namespace: str | None = None, cluster: str | None = None
    ) -> dict[str, Any]: ...

    async def list(
        self,
        resource: str,
        *,
        namespace: str | None = None,
        all_namespaces: bool = False,
        label_selector: str | None = None,
        field_selector: str | None = None,
        cluster: str | None = None,
    ) -> list[dict[str, Any]]: ...

    async def create(
        self,
        resource: str,
        body: dict[str, Any],
        *,
        namespace: str | None = None,
        cluster: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """``resource`` may be a subresource (``pods/eviction``): it is created on the
        object ``body``'s ``metadata.name`` names."""
        ...

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
        """``patch_type``: ``merge``, ``strategic`` or ``json``."""
        ...

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
        """Server-side apply of ``body`` (named by its ``metadata.name``) as ``field_manager``:
        a PATCH of type ``application/apply-patch+yaml`` that creates the object when it is
        missing. ``force`` takes over fields another manager owns (otherwise a conflict is an
        error naming them); ``dry_run`` asks the server to check everything and persist
        nothing. Needs the ``patch`` permission (and ``create`` for a new object)."""
        ...

    async def delete(
        self,
        resource: str,
        name: str,
        *,
        namespace: str | None = None,
        cluster: str | None = None,
        grace_period: int | None = None,
    ) -> dict[str, Any]:
        """``grace_period``: seconds the object's processes get to stop (``kubectl delete
        --grace-period``; 0 kills at once); ``None``: the object's own."""
        ...

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
        """A container's log as text (``GET pods/NAME/log``; needs ``pods/log:read``).
        ``container`` may be left out for a pod with one container; ``previous`` asks for
        the run before the last restart; the other options are ``kubectl logs``' own."""
        ...

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
        """Run ``command`` (argv, not a shell line) in a container of pod ``name``, as
        ``kubectl exec`` does (WebSocket, ``v5.channel.k8s.io``; needs ``pods/exec:create``).
        ``container`` may be left out for a pod with one container; ``tty`` merges stderr
        into stdout, as a terminal does. The session is open when this returns."""
        ...

    async def narrow(
        self, permission: str, names: Sequence[str] | None, *, wait: bool = True
    ) -> dict[str, Any]:
        """Limit ``permission``, one the manifest declares (``groups:impersonate``,
        ``clusterroles.rbac.authorization.k8s.io:bind``), to the objects ``names`` names, on
        every cluster: the kernel stores it (it survives restarts and applies at every
        provisioning of the plugin's ClusterRole) and compiles it as ``resourceNames``.
        ``names=None`` lifts it; ``[]`` leaves no name. Only verbs RBAC restricts by name
        (get, update, patch, delete, bind, escalate, impersonate, approve, sign, use; never
        create, list, watch or deletecollection) and only declared permissions: a plugin
        narrows, never widens (refused with ``UsageError`` or ``PermissionDenied``, nothing
        changed). Returns ``{"permission", "names", "changed", "clusters"}``, ``clusters``
        mapping each cluster to ``"ok"`` or why it could not be updated (its next
        provisioning applies it); ``wait=False`` (in a hook, which must not wait on
        clusters) returns at once, the clusters ``"pending"``."""
        ...

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
        """One raw API request (``GET /api/v1/namespaces/dev/pods``) as the plugin's
        ServiceAccount impersonating ``user`` with ``groups`` (and ``uid``): the cluster's RBAC
        decides as for that user. Needs ``users:impersonate`` (and ``groups:impersonate``,
        ``uids.authentication.k8s.io:impersonate`` for groups and uid); ``system:`` users and
        groups are refused. ``headers``: only content negotiation passes (never
        ``Authorization`` or ``Impersonate-*``). Returns status, headers and body (bytes;
        with ``stream`` and a success, an async iterator of chunks, to ``aclose``)."""
        ...

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
        """A WebSocket to the API server (``pods/NAME/exec``, ``attach``, ``portforward``)
        impersonating ``user`` as :meth:`impersonated` does; the open socket (``protocol``,
        ``receive``, ``send_bytes``, ``send_str``, ``close``), or ``(status, headers,
        body)`` when the API server refuses the upgrade."""
        ...
