"""Subjects as users type them: ``user:alice``, ``group:sre``, ``sa:ns/name``, ``@discord``.

A subject becomes the :class:`UserInfo` the authorizer would see (ServiceAccounts carry their
three implicit groups, every authenticated user ``system:authenticated``). A chat mention
resolves through the kernel's Discord-to-Kubernetes identity mapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from clustercord_sdk.errors import UsageError
from clustercord_sdk.rbac import (
    RBACSnapshot,
    UserInfo,
    chat_user_id,
    parse_service_account_username,
    user_info_for_chat_user,
    user_info_for_subject,
)

RBAC_GROUP = "rbac.authorization.k8s.io"
IDENTITY_CAPABILITY = "identity-map"
FORMS = "user:NAME, group:NAME, sa:NAMESPACE/NAME or @discord-user"


@dataclass(frozen=True)
class Subject:
    """A parsed subject: the binding subject it names and the identity it is checked as."""

    subject: dict[str, str]
    user: UserInfo
    label: str
    chat_user: str | None = None

    @property
    def kind(self) -> str:
        return self.subject["kind"]


def subject_label(subject: Mapping[str, str]) -> str:
    """``user:alice``, ``group:sre``, ``sa:ns/name``: the form users type, for output."""
    kind = subject.get("kind", "")
    if kind == "ServiceAccount":
        return f"sa:{subject.get('namespace', '')}/{subject.get('name', '')}"
    return f"{kind.lower()}:{subject.get('name', '')}"


def subject_key(subject: Mapping[str, str]) -> tuple[str, str, str]:
    return (subject.get("kind", ""), subject.get("namespace", ""), subject.get("name", ""))


def plain_subject(subject: Mapping[str, str]) -> dict[str, str]:
    """``{"kind", "name", "namespace"}`` as the JSON output promises."""
    return {
        "kind": subject.get("kind", ""),
        "name": subject.get("name", ""),
        "namespace": subject.get("namespace", ""),
    }


def parse_subject(text: str, identities: Any = None, roles: tuple[str, ...] = ()) -> Subject:
    """One subject from what a user typed; a clear :class:`UsageError` otherwise."""
    value = text.strip()
    user_id = chat_user_id(value)
    if user_id is not None:
        return _chat_subject(user_id, identities, roles)
    kind, sep, name = value.partition(":")
    kind = kind.lower()
    if sa := parse_service_account_username(value):
        return _service_account(*sa)
    if not sep or not name:
        raise UsageError(f"subject {text!r}: expected {FORMS}")
    if kind == "user":
        subject = {"kind": "User", "apiGroup": RBAC_GROUP, "name": name}
    elif kind == "group":
        subject = {"kind": "Group", "apiGroup": RBAC_GROUP, "name": name}
    elif kind in ("sa", "serviceaccount"):
        namespace, slash, sa_name = name.partition("/")
        if not slash or not namespace or not sa_name:
            raise UsageError(f"subject {text!r}: a ServiceAccount is sa:NAMESPACE/NAME")
        return _service_account(namespace, sa_name)
    else:
        raise UsageError(f"subject {text!r}: unknown kind {kind!r}; expected {FORMS}")
    return Subject(subject, user_info_for_subject(subject), subject_label(subject))


def _service_account(namespace: str, name: str) -> Subject:
    subject = {"kind": "ServiceAccount", "name": name, "namespace": namespace}
    return Subject(subject, user_info_for_subject(subject), subject_label(subject))


def _chat_subject(user_id: str, identities: Any, roles: tuple[str, ...]) -> Subject:
    if identities is None:
        raise UsageError(
            f"@{user_id}: this kernel does not share its Discord-to-Kubernetes identity "
            f"mapping with plugins (capability {IDENTITY_CAPABILITY!r}); name the Kubernetes "
            "subject instead, e.g. user:alice"
        )
    user = user_info_for_chat_user(identities, user_id, roles)
    subject = {"kind": "User", "apiGroup": RBAC_GROUP, "name": user.name}
    return Subject(subject, user, f"@{user_id} (user:{user.name})", user_id)


def identity_directory(ctx: Any) -> Any:
    """The kernel's identity mapping when the plugin was granted it, else ``None``."""
    return ctx.plugin.services.get(IDENTITY_CAPABILITY)


def is_named(snapshot: RBACSnapshot, subject: Subject) -> bool:
    """Does any binding name this subject itself (not only ``system:authenticated``)?

    A subject no binding names is usually a typo; answers for it are still exact, but the
    reply says so.
    """
    implicit = {"system:authenticated", "system:serviceaccounts"}
    own_groups = tuple(
        g for g in subject.user.groups if g not in implicit and not g.startswith("system:service")
    )
    if subject.kind == "Group":
        own_groups = (subject.subject["name"],)
    return bool(snapshot.bindings_everywhere(UserInfo(subject.user.name, own_groups)))
