"""Who a Discord user is in Kubernetes: the mapping from configuration.

```toml
[identity.users]
"111111111111111111" = { user = "alice@example.com", groups = ["sre"] }

[identity.roles]          # every member of the Discord role gets these groups
"222222222222222222" = { groups = ["platform-admins"] }
```

A user must be mapped by user id to act on a cluster in their own name: a role adds
groups but no name, since a Kubernetes user is one person. Every mapped user also
carries ``system:authenticated``, as the API server would add it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from clustercord_sdk.errors import PermissionDenied, UsageError

AUTHENTICATED = "system:authenticated"
_RESERVED = ("system:masters",)


@dataclass(frozen=True)
class KubernetesIdentity:
    user: str
    groups: tuple[str, ...]


class IdentityMap:
    def __init__(
        self, users: Mapping[str, KubernetesIdentity], role_groups: Mapping[str, tuple[str, ...]]
    ) -> None:
        self.users = dict(users)
        self.role_groups = dict(role_groups)

    @classmethod
    def from_config(
        cls, raw: Mapping[str, Any] | None, where: str = "configuration"
    ) -> IdentityMap:
        """Parse ``[identity]``; a malformed entry raises :class:`UsageError` naming it."""
        raw = raw or {}
        users: dict[str, KubernetesIdentity] = {}
        for discord_id, entry in (raw.get("users") or {}).items():
            path = f"{where}: identity.users.{discord_id}"
            if (
                not isinstance(entry, Mapping)
                or not isinstance(entry.get("user"), str)
                or not (entry["user"].strip())
            ):
                raise UsageError(f'{path} needs user = "<kubernetes user name>"')
            users[str(discord_id)] = KubernetesIdentity(
                entry["user"].strip(), _groups(entry.get("groups", []), path)
            )
        roles: dict[str, tuple[str, ...]] = {}
        for role_id, entry in (raw.get("roles") or {}).items():
            path = f"{where}: identity.roles.{role_id}"
            if not isinstance(entry, Mapping) or set(entry) - {"groups"}:
                raise UsageError(f"{path} takes only groups = [...] (a role names no user)")
            roles[str(role_id)] = _groups(entry.get("groups", []), path)
        return cls(users, roles)

    def resolve(self, user_id: str, roles: Iterable[str] = ()) -> KubernetesIdentity:
        """The Kubernetes identity a Discord user acts as, or a clear refusal."""
        mapped = self.users.get(str(user_id))
        if mapped is None:
            raise PermissionDenied(
                f"your Discord account ({user_id}) is not mapped to a Kubernetes identity; "
                "an admin adds it under [identity.users] in the configuration"
            )
        groups = list(mapped.groups)
        for role in roles:
            groups.extend(g for g in self.role_groups.get(str(role), ()) if g not in groups)
        if AUTHENTICATED not in groups:
            groups.append(AUTHENTICATED)
        return KubernetesIdentity(mapped.user, tuple(groups))

    def discord_ids_of(self, kubernetes_user: str) -> list[str]:
        """The Discord users mapped to a Kubernetes user (for ``@handle`` lookups, reports)."""
        return sorted(d for d, identity in self.users.items() if identity.user == kubernetes_user)


def _groups(value: Any, path: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(g, str) and g for g in value):
        raise UsageError(f"{path}: groups must be a list of group names")
    for group in value:
        if group in _RESERVED:
            # Granting system:masters from chat configuration bypasses RBAC entirely.
            raise UsageError(f"{path}: {group} may not be mapped (it bypasses RBAC)")
    return tuple(value)
