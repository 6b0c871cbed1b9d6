"""Every Kubernetes API call a plugin makes goes through here.

- It is checked in-process against the plugin's declared permissions first, so an
  undeclared call fails at once with a message naming the permission to declare
  (the API server would refuse it too: the plugin's ServiceAccount has no more).
- It runs in a worker thread (the official client blocks) with a timeout.
- 429 and 5xx answers are retried with exponential backoff (``Retry-After`` honoured).
- API errors become messages a person understands.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from clustercord_sdk.errors import CommandError, PermissionDenied
from clustercord_sdk.permissions import Permission, covers

T = TypeVar("T")
RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Action:
    """What a call does, in RBAC terms, for checks and messages."""

    verb: str
    resource: str
    group: str = ""
    subresource: str | None = None
    namespace: str | None = None
    name: str | None = None
    cluster: str | None = None

    @property
    def permission(self) -> Permission:
        return Permission(self.resource, self.group, self.subresource, self.verb)

    def describe(self) -> str:
        what = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        if self.group:
            what = f"{what}.{self.group}"
        target = f" {self.name!r}" if self.name else ""
        where = f" in namespace {self.namespace}" if self.namespace else ""
        on = f" on cluster {self.cluster}" if self.cluster else ""
        return f"{self.verb} {what}{target}{where}{on}"


def check_declared(plugin: str, declared: Iterable[Permission], action: Action) -> None:
    """Refuse, in-process, a call the plugin's manifest does not declare."""
    if not covers(list(declared), [action.permission]):
        wanted = action.permission
        hint = "read" if wanted.verb in ("get", "list", "watch") else wanted.verb
        suggestion = Permission(wanted.resource, wanted.group, wanted.subresource, hint)
        raise PermissionDenied(
            f"plugin {plugin} may not {action.describe()}: its manifest does not declare "
            f"{action.permission} (declare {suggestion})"
        )


def explain(error: Any, action: Action) -> CommandError:
    """A :class:`CommandError` a person understands, from a client ``ApiException``."""
    status = getattr(error, "status", None)
    body = _body(error)
    message = body.get("message") or getattr(error, "reason", None) or str(error)
    if status == 401:
        return CommandError(
            f"cannot {action.describe()}: the cluster did not accept our "
            "credentials (401 Unauthorized); the token may have expired"
        )
    if status == 403:
        return PermissionDenied(
            f"cannot {action.describe()}: forbidden by the cluster's RBAC. It needs "
            f"{action.permission} — {message}"
        )
    if status == 404:
        return CommandError(f"not found: {message}")
    if status == 409:
        return CommandError(f"conflict: {message}")
    if status == 422:
        causes = (body.get("details") or {}).get("causes") or []
        fields = "; ".join(f"{c.get('field', '?')}: {c.get('message', '')}" for c in causes)
        return CommandError(f"invalid: {fields or message}")
    if status == 429:
        return CommandError(f"the cluster is throttling us (429) and kept doing so: {message}")
    if status is not None and status >= 500:
        return CommandError(f"the cluster failed to {action.describe()} ({status}): {message}")
    return CommandError(f"cannot {action.describe()}: {message}")


def _body(error: Any) -> dict[str, Any]:
    raw = getattr(error, "body", None)
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except (TypeError, ValueError):
        return {"message": str(raw)[:300]}
    return parsed if isinstance(parsed, dict) else {}


def _reason(error: Exception) -> str:
    """The short cause inside urllib3's nested errors ("Connection refused")."""
    found = re.search(r"\[Errno -?\d+\] ([^\"')]+)", str(error))
    return found.group(1).strip() if found else type(error).__name__


def _retry_after(error: Any) -> float | None:
    headers = getattr(error, "headers", None) or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class ApiStatusError(Exception):
    """A non-2xx answer, shaped like the client's ``ApiException`` for :func:`explain`.

    Raised by ``KubernetesService.request`` and by the ``pods/exec`` WebSocket handshake;
    it lives here, below both, so neither has to import the other for it."""

    def __init__(self, status: int, reason: str, body: bytes, headers: Any) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.body = body.decode("utf-8", errors="replace") if body else ""
        self.headers = headers


async def call(
    function: Callable[[], T],
    action: Action,
    *,
    timeout: float = 30.0,
    retries: int = 3,
    backoff: float = 0.5,
    api_exception: type[BaseException] | None = None,
) -> T:
    """Run a blocking client call in a thread, with timeout, retries and clear errors."""
    if api_exception is None:
        from kubernetes.client.exceptions import ApiException

        api_exception = ApiException
    attempt = 0
    while True:
        try:
            return await asyncio.wait_for(asyncio.to_thread(function), timeout)
        except TimeoutError:
            raise CommandError(
                f"cannot {action.describe()}: no answer within {timeout:g} s "
                "(is the cluster reachable?)"
            ) from None
        except api_exception as error:
            status = getattr(error, "status", None)
            if status in RETRIED_STATUSES and attempt < retries:
                delay = _retry_after(error) or backoff * 2**attempt * (1 + random.random() / 4)
                attempt += 1
                await asyncio.sleep(min(delay, 30.0))
                continue
            raise explain(error, action) from None
        except OSError as error:  # connection refused, DNS: the cluster is unreachable
            raise CommandError(f"cannot {action.describe()}: {error.strerror or error}") from None
        except Exception as error:
            if type(error).__module__.startswith("urllib3"):  # the client's transport errors
                raise CommandError(
                    f"cannot {action.describe()}: the cluster is unreachable ({_reason(error)})"
                ) from None
            raise
