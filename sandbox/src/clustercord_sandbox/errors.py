"""API errors as the real API server reports them: a `Status` object and an HTTP code.

kubectl and client libraries parse `reason`, `details` and `message` (kubectl prints
`Error from server (NotFound): pods "x" not found` from them), so their shape matters.
"""

from __future__ import annotations

import json
from typing import Any

from .registry import ResourceType


class ApiError(Exception):
    """An error answer; `status()` is the body the server sends."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        """The `Status` in the field order of Go's `metav1.Status` (what `encode` keeps)."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:
            body["details"] = _go_details(self.details)
        body["code"] = self.code
        return body


_DETAILS_ORDER = ("name", "group", "kind", "uid", "causes", "retryAfterSeconds")
_CAUSE_ORDER = ("reason", "message", "field")


def _go_details(details: dict[str, Any]) -> dict[str, Any]:
    """`StatusDetails` in Go's field order, empty fields left out (they are `omitempty`)."""
    out = {key: details[key] for key in _DETAILS_ORDER if details.get(key)}
    if "causes" in out:
        out["causes"] = [
            {key: cause[key] for key in _CAUSE_ORDER if cause.get(key)} for cause in out["causes"]
        ]
    out.update({k: v for k, v in details.items() if k not in _DETAILS_ORDER})
    return out


# Go's encoding/json escapes these inside strings (HTML safety, JavaScript line separators).
_GO_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def encode(body: Any) -> bytes:
    """JSON as the API server writes it (Go's `json.Encoder`): compact, UTF-8, `<>&` escaped,
    a trailing newline. Keys keep their order, so a body built in Go field order (a `Status`)
    is byte for byte the API server's."""
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return (text.translate(_GO_ESCAPES) + "\n").encode()


def _details(rt: ResourceType, name: str, **extra: Any) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name, "kind": rt.plural}
    if rt.group:
        details["group"] = rt.group
    details.update(extra)
    return details


def not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{rt.group_resource} "{name}" not found', _details(rt, name))


def already_exists(rt: ResourceType, name: str) -> ApiError:
    return ApiError(
        409, "AlreadyExists", f'{rt.group_resource} "{name}" already exists', _details(rt, name)
    )


def conflict(rt: ResourceType, name: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {rt.group_resource} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        _details(rt, name),
    )


def invalid(rt: ResourceType, name: str, causes: list[tuple[str, str, str]]) -> ApiError:
    """422 Invalid; each cause is (field, reason type, message) like field.ErrorList; the
    message lists them as Go's aggregate error does (in brackets when there are several)."""
    summary = ", ".join(f"{field}: {message}" for field, _, message in causes)
    if len(causes) > 1:
        summary = f"[{summary}]"
    kind = rt.kind if not rt.group else f"{rt.kind}.{rt.group}"
    return ApiError(
        422,
        "Invalid",
        f'{kind} "{name}" is invalid: {summary}',
        {
            "name": name,
            "group": rt.group,
            "kind": rt.kind,
            "causes": [
                {"reason": reason, "message": f"{message}", "field": field}
                for field, reason, message in causes
            ],
        },
    )


def namespace_not_found(namespace: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'namespaces "{namespace}" not found',
        {"name": namespace, "kind": "namespaces"},
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def forbidden(user: str, verb: str, rt_name: str, namespace: str | None) -> ApiError:
    scope = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
    return ApiError(
        403,
        "Forbidden",
        f'{rt_name} is forbidden: User "{user}" cannot {verb} resource "{rt_name}"{scope}',
    )


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def method_not_supported(message: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format ({content_type}) - accepted media "
        "types include: application/json-patch+json, application/merge-patch+json, "
        "application/strategic-merge-patch+json",
    )
