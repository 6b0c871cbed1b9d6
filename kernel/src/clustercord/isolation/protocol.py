"""Frames and values between the kernel and an isolated plugin's process.

A frame is a 4-byte big-endian length and that many bytes of UTF-8 JSON, one object. Both
sides refuse a frame over :data:`MAX_FRAME` (a child cannot make the kernel allocate without
bound). Values of the SDK travel tagged: ``{"$t": "Reply", "v": …}`` and so on for the
dataclasses in :data:`TYPES`, ``{"$t": "bytes", "v": base64}``; a dict that itself has a
``"$t"`` key is wrapped (``{"$t": "dict", "v": …}``). Decoding builds only the types listed
here, from plain JSON: nothing a child sends is ever unpickled or evaluated.

Messages (``op``):

- kernel → child: ``load`` (first), ``call`` (a hook or a handler), ``result`` (the answer to
  a request), ``cancel``;
- child → kernel: ``ready`` or ``failed`` (after ``load``), ``done`` (a call's result),
  ``request`` (a service call: store, kubernetes, send, …), ``log``.
"""

from __future__ import annotations

import base64
import json
import os
import struct
from collections.abc import Callable
from dataclasses import fields, is_dataclass
from typing import Any

from clustercord_sdk.context import Invocation
from clustercord_sdk.errors import ClusterCordError, CommandError, PermissionDenied, UsageError
from clustercord_sdk.events import Event
from clustercord_sdk.http import HttpRequest, HttpResponse
from clustercord_sdk.kubernetes import ClusterInfo
from clustercord_sdk.reply import Confirmation, File, Progress, Reply
from clustercord_sdk.services import Approval, Job, Message, PluginInfo

MAX_FRAME = 64 * 1024 * 1024
"""The largest frame either side accepts (64 MiB)."""

_HEADER = struct.Struct(">I")

TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        Approval,
        ClusterInfo,
        Confirmation,
        Event,
        HttpRequest,
        HttpResponse,
        Invocation,
        Job,
        Message,
        PluginInfo,
        Progress,
    )
}
"""SDK dataclasses that may cross the pipe (besides Reply and File)."""

ERRORS: dict[str, type[ClusterCordError]] = {
    cls.__name__: cls for cls in (ClusterCordError, CommandError, UsageError, PermissionDenied)
}
"""Errors that keep their class across the pipe: a person's answer, not a failure."""


class FrameError(Exception):
    """A frame that is too large or not a JSON object: the other side is broken or hostile."""


def encode(message: dict[str, Any]) -> bytes:
    data = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if len(data) > MAX_FRAME:
        raise FrameError(f"a message of {len(data)} bytes is over the {MAX_FRAME} byte limit")
    return _HEADER.pack(len(data)) + data


def _read_exactly(fd: int, size: int) -> bytes | None:
    chunks = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int) -> dict[str, Any] | None:
    """The next message from ``fd`` (blocking); ``None`` at the end of the stream."""
    header = _read_exactly(fd, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size > MAX_FRAME:
        raise FrameError(f"a frame of {size} bytes is over the {MAX_FRAME} byte limit")
    data = _read_exactly(fd, size)
    if data is None:
        return None
    try:
        message = json.loads(data)
    except ValueError as exc:
        raise FrameError(f"a frame is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise FrameError("a frame is not a JSON object")
    return message


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


# -- values -----------------------------------------------------------------------------
def to_wire(value: Any) -> Any:
    """``value`` as JSON-ready data, SDK dataclasses tagged (see the module's docstring)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Reply):
        return {"$t": "Reply", "v": value.to_dict()}
    if isinstance(value, File):
        return {"$t": "File", "v": Reply(files=[value]).to_dict()["files"][0]}
    if isinstance(value, (bytes, bytearray)):
        return {"$t": "bytes", "v": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, dict) or hasattr(value, "items"):
        plain = {str(k): to_wire(v) for k, v in value.items()}
        return {"$t": "dict", "v": plain} if "$t" in plain else plain
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [to_wire(v) for v in items]
    if is_dataclass(value) and not isinstance(value, type):
        name = type(value).__name__
        if TYPES.get(name) is type(value):
            return {
                "$t": name,
                "v": {f.name: to_wire(getattr(value, f.name)) for f in fields(value)},
            }
        return {f.name: to_wire(getattr(value, f.name)) for f in fields(value)}
    return str(value)


def from_wire(value: Any) -> Any:
    """The inverse of :func:`to_wire`; builds only the allowlisted SDK types."""
    if isinstance(value, list):
        return [from_wire(v) for v in value]
    if not isinstance(value, dict):
        return value
    tag = value.get("$t")
    if tag is None:
        return {k: from_wire(v) for k, v in value.items()}
    inner = value.get("v")
    if tag == "dict" and isinstance(inner, dict):
        return {k: from_wire(v) for k, v in inner.items()}
    if tag == "bytes" and isinstance(inner, str):
        return base64.b64decode(inner)
    if tag == "Reply" and isinstance(inner, dict):
        return Reply.from_dict(inner)
    if tag == "File" and isinstance(inner, dict):
        return Reply.from_dict({"files": [inner]}).files[0]
    cls = TYPES.get(str(tag))
    if cls is None or not isinstance(inner, dict):
        raise FrameError(f"unknown value type {tag!r}")
    names = {f.name for f in fields(cls)}
    kwargs = {k: from_wire(v) for k, v in inner.items() if k in names}
    if cls is Invocation:
        kwargs["command"] = tuple(kwargs.get("command", ()))
        kwargs["roles"] = frozenset(kwargs.get("roles", ()))
    return cls(**kwargs)


def error_to_wire(error: BaseException) -> dict[str, Any]:
    return {"type": type(error).__name__, "message": str(error)}


def error_from_wire(error: Any, *, remote: Callable[[str, str], Exception]) -> Exception:
    """An SDK error of the same class, else ``remote(type, message)``."""
    if not isinstance(error, dict):
        return remote("Error", "malformed error")
    name, message = str(error.get("type", "Error")), str(error.get("message", ""))
    cls = ERRORS.get(name)
    if cls is not None:
        return cls(message)
    return remote(name, message)
