"""One parsed resource request: what a URL under ``/api`` or ``/apis`` names.

Below both :mod:`.server`, which parses it from the URL, and the subresource handlers it is
handed to (``serviceaccounts/token`` in :mod:`.tokens`, ...), so those need not import the
server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import web

from clustercord_sdk.rbac import UserInfo

from .registry import ResourceType


@dataclass
class ResourceRequest:
    rt: ResourceType
    namespace: str
    name: str
    subresource: str


# A handler for one subresource (`pods/log`, `*/scale`, ...): it gets the request after
# authentication and authorization, with the user it acts for.
SubresourceHandler = Callable[
    [web.Request, ResourceRequest, UserInfo], Awaitable[web.StreamResponse]
]


def query_flag(query: Mapping[str, str], name: str) -> bool:
    """A boolean query parameter as the API server converts it (`Convert_Slice_string_To_bool`).

    Absent is false; the first value `0` or `false` (in any case) is false; anything else,
    `True`, `yes` and the empty string included, is true. Every boolean parameter (watch,
    allowWatchBookmarks, force, exec's stdin/stdout/stderr/tty, logs' follow/previous/
    timestamps ...) goes through here, so the official client's `True` (up to v36) and
    `true` (v37) mean the same.
    """
    if name not in query:
        return False
    value = query[name]  # aiohttp's MultiDict answers the first value, as Go takes in[0]
    return not (value == "0" or value.lower() == "false")
