"""Who a chat user is in Kubernetes, as the RBAC library needs it.

The kernel maps Discord users (and the groups their Discord roles add) to Kubernetes
identities from its ``[identity]`` configuration. A plugin that answers RBAC questions about
``@someone`` reaches that mapping through the ``identity-map`` capability, typed by the
:class:`IdentityDirectory` protocol below, and turns the answer into a :class:`UserInfo` with
:func:`user_info_for_chat_user`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Protocol

from clustercord_sdk.rbac.subjects import UserInfo

#: ``123``, ``@123``, ``<@123>`` and ``<@!123>``: the ways a Discord user id is written.
_CHAT_USER = re.compile(r"^(?:@?(\d{1,20})|<@!?(\d{1,20})>)$")


class MappedIdentity(Protocol):
    """A Kubernetes user name and the groups it carries."""

    @property
    def user(self) -> str: ...

    @property
    def groups(self) -> tuple[str, ...]: ...


class IdentityDirectory(Protocol):
    """The kernel's Discord-to-Kubernetes identity mapping (capability ``identity-map``)."""

    def resolve(self, user_id: str, roles: Iterable[str] = ()) -> MappedIdentity:
        """The identity ``user_id`` acts as (groups of ``roles`` added); raises
        :class:`~clustercord_sdk.errors.PermissionDenied` when the user is not mapped."""
        ...

    def discord_ids_of(self, kubernetes_user: str) -> list[str]:
        """The chat users mapped to a Kubernetes user name."""
        ...


def chat_user_id(text: str) -> str | None:
    """The Discord user id in ``@123``, ``<@123>`` or ``<@!123>``; ``None`` otherwise."""
    match = _CHAT_USER.match(text.strip())
    if match is None or not text.strip().startswith(("@", "<")):
        return None
    return match.group(1) or match.group(2)


def user_info_for_chat_user(
    directory: IdentityDirectory, user_id: str, roles: Iterable[str] = ()
) -> UserInfo:
    """The :class:`UserInfo` a mapped chat user is evaluated as (``system:authenticated``
    included, as the kernel's mapping adds it)."""
    identity = directory.resolve(user_id, roles)
    return UserInfo.authenticated(identity.user, tuple(identity.groups))
