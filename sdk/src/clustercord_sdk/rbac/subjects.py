"""Users, groups and ServiceAccounts: who a binding's subjects are.

An authenticator, not RBAC, decides a user's groups; these helpers reproduce what the
Kubernetes authenticators attach so that an offline check for a subject gives the answer
the API server would: every authenticated user is in ``system:authenticated``, a
ServiceAccount also in ``system:serviceaccounts`` and ``system:serviceaccounts:<ns>``, and
the anonymous user ``system:anonymous`` is in ``system:unauthenticated``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

RBAC_API_GROUP = "rbac.authorization.k8s.io"
USER_KIND = "User"
GROUP_KIND = "Group"
SERVICE_ACCOUNT_KIND = "ServiceAccount"

#: The group the API server lets do anything, before RBAC is consulted.
SYSTEM_PRIVILEGED_GROUP = "system:masters"
ALL_AUTHENTICATED = "system:authenticated"
ALL_UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS_USER = "system:anonymous"
ALL_SERVICE_ACCOUNTS = "system:serviceaccounts"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


def service_account_username(namespace: str, name: str) -> str:
    """``system:serviceaccount:<namespace>:<name>``, the user a ServiceAccount token maps to."""
    return f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"


def parse_service_account_username(username: str) -> tuple[str, str] | None:
    """``(namespace, name)`` of a ServiceAccount user name, or ``None`` for any other user."""
    if not username.startswith(SERVICE_ACCOUNT_PREFIX):
        return None
    namespace, sep, name = username[len(SERVICE_ACCOUNT_PREFIX) :].partition(":")
    if not sep or not namespace or not name or ":" in name:
        return None
    return namespace, name


@dataclass(frozen=True)
class UserInfo:
    """An authenticated identity: ``user.Info`` of the API server.

    ``groups`` are taken as given, exactly like the RBAC authorizer; use the constructors
    below to get the implicit groups a real authenticator adds.
    """

    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def authenticated(cls, name: str, groups: tuple[str, ...] | list[str] = ()) -> UserInfo:
        """A user as an authenticator returns it (``system:authenticated`` added)."""
        return cls(name=name, groups=_with(tuple(groups), ALL_AUTHENTICATED))

    @classmethod
    def service_account(cls, namespace: str, name: str) -> UserInfo:
        """A ServiceAccount token's user with its three implicit groups."""
        groups = (ALL_SERVICE_ACCOUNTS, f"{ALL_SERVICE_ACCOUNTS}:{namespace}", ALL_AUTHENTICATED)
        return cls(name=service_account_username(namespace, name), groups=groups)

    @classmethod
    def anonymous(cls) -> UserInfo:
        """What an unauthenticated request is evaluated as."""
        return cls(name=ANONYMOUS_USER, groups=(ALL_UNAUTHENTICATED,))

    @property
    def service_account_ref(self) -> tuple[str, str] | None:
        """``(namespace, name)`` when this is a ServiceAccount user."""
        return parse_service_account_username(self.name)


def _with(groups: tuple[str, ...], extra: str) -> tuple[str, ...]:
    return groups if extra in groups else (*groups, extra)


def user_info_for_subject(
    subject: Mapping[str, Any], default_namespace: str = "", *, implicit_groups: bool = True
) -> UserInfo:
    """The identity a binding subject stands for, to ask "what can this subject do?".

    A ServiceAccount subject without a namespace takes ``default_namespace`` (the binding's,
    as the authorizer does for RoleBindings). A Group subject becomes a nameless member of
    that group. With ``implicit_groups`` the groups an authenticator would add are included
    (``system:authenticated`` for everyone except ``system:anonymous`` and members of
    ``system:unauthenticated``); without them only the subject's own grants count.
    """
    kind = str(subject.get("kind", ""))
    name = str(subject.get("name", ""))
    if kind == SERVICE_ACCOUNT_KIND:
        namespace = str(subject.get("namespace") or default_namespace)
        if implicit_groups:
            return UserInfo.service_account(namespace, name)
        return UserInfo(name=service_account_username(namespace, name))
    if kind == GROUP_KIND:
        if not implicit_groups or name in (ALL_UNAUTHENTICATED, ALL_AUTHENTICATED):
            return UserInfo(name="", groups=(name,))
        return UserInfo(name="", groups=(name, ALL_AUTHENTICATED))
    if kind == USER_KIND:
        if not implicit_groups:
            return UserInfo(name=name)
        if name == ANONYMOUS_USER:
            return UserInfo.anonymous()
        return UserInfo.authenticated(name)
    raise ValueError(f"unknown subject kind {kind!r} (expected User, Group or ServiceAccount)")


def normalize_subject(subject: Mapping[str, Any], binding_namespace: str = "") -> dict[str, str]:
    """A subject with the defaults Kubernetes applies: the RBAC apiGroup for users and
    groups, and the binding's namespace for a ServiceAccount that names none."""
    kind = str(subject.get("kind", ""))
    out = {"kind": kind, "name": str(subject.get("name", ""))}
    if kind == SERVICE_ACCOUNT_KIND:
        out["namespace"] = str(subject.get("namespace") or binding_namespace)
    else:
        out["apiGroup"] = str(subject.get("apiGroup") or RBAC_API_GROUP)
    return out


def applies_to(user: UserInfo, subjects: list[Mapping[str, Any]], namespace: str) -> bool:
    """``appliesTo`` of ``pkg/registry/rbac/validation/rule.go``: does any subject name this user?

    ``namespace`` is the binding's namespace (``""`` for a ClusterRoleBinding); it is the
    default for ServiceAccount subjects that omit theirs. A User named ``*`` matches only a
    user literally called ``*``.
    """
    return any(subject_applies(user, subject, namespace) for subject in subjects)


def subject_applies(user: UserInfo, subject: Mapping[str, Any], namespace: str) -> bool:
    """One subject of :func:`applies_to`."""
    kind = subject.get("kind")
    name = str(subject.get("name", ""))
    if kind == USER_KIND:
        return user.name == name
    if kind == GROUP_KIND:
        return name in user.groups
    if kind == SERVICE_ACCOUNT_KIND:
        sa_namespace = subject.get("namespace") or namespace
        if not sa_namespace:
            return False
        return user.name == service_account_username(str(sa_namespace), name)
    return False
