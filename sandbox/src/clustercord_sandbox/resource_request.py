"""One parsed resource request: what a URL under ``/api`` or ``/apis`` names.

Below both :mod:`.server`, which parses it from the URL, and the subresource handlers it is
handed to (``serviceaccounts/token`` in :mod:`.tokens`, ...), so those need not import the
server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
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
