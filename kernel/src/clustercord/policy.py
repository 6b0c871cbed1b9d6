"""The access policy: which Discord users and roles may run which commands."""

from __future__ import annotations

from dataclasses import replace
from fnmatch import fnmatchcase

from clustercord.config import AccessConfig
from clustercord_sdk.context import Invocation
from clustercord_sdk.manifest import CommandSpec

CONSOLE_USER = "console"
"""The user id of whoever sits at the console (``clustercord run``/``console`` without ``--as``)."""


def is_local_operator(invocation: Invocation) -> bool:
    """Whether the invocation comes from the local operator: the person at the console who
    already holds the kubeconfig and the data directory (not a Discord user, nor ``--as``).

    The one place that says so: the access policy (``console_admin``) and the Kubernetes
    service (no SubjectAccessReview for the operator) both ask here."""
    return invocation.frontend == "console" and invocation.user_id == CONSOLE_USER


class AccessPolicy:
    def __init__(self, config: AccessConfig) -> None:
        self.config = config

    def is_admin(self, invocation: Invocation) -> bool:
        if is_local_operator(invocation):
            return self.config.console_admin
        admins = self.config.admins
        return f"user:{invocation.user_id}" in admins or any(
            f"role:{role}" in admins for role in invocation.roles
        )

    def stamp(self, invocation: Invocation) -> Invocation:
        """The invocation as plugins see it: ``admin`` decided here, not by a front end."""
        admin = self.is_admin(invocation)
        return invocation if invocation.admin == admin else replace(invocation, admin=admin)

    def check(self, invocation: Invocation, command: CommandSpec) -> str | None:
        """``None`` when allowed, otherwise the reason to show the user."""
        if self.is_admin(invocation):
            return None
        if command.admin:
            return f"/{command.name} is for ClusterCord admins only"
        patterns = list(self.config.users.get(invocation.user_id, ()))
        for role in invocation.roles:
            patterns.extend(self.config.roles.get(role, ()))
        name = command.policy_name
        if any(
            fnmatchcase(name, pattern) or fnmatchcase(command.path[0], pattern)
            for pattern in patterns
        ):
            return None
        # With default "allow", a command no rule names is open to everyone; once any
        # rule names it, only the users and roles whose rules name it may run it.
        if self.config.default == "allow" and not self._named_anywhere(command):
            return None
        return f"your roles do not allow /{command.name}"

    def _named_anywhere(self, command: CommandSpec) -> bool:
        every = [p for ps in (*self.config.roles.values(), *self.config.users.values()) for p in ps]
        return any(
            fnmatchcase(command.policy_name, p) or fnmatchcase(command.path[0], p) for p in every
        )
