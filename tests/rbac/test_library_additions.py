"""The SDK RBAC library's additions for the plugin: bindings of a subject in every namespace,
an authorizer bound to one user, and chat mentions resolved through an identity mapping."""

from __future__ import annotations

import pytest

from clustercord.kubernetes.identity import IdentityMap
from clustercord_sandbox.fixtures import homelab
from clustercord_sdk.errors import PermissionDenied
from clustercord_sdk.rbac import (
    Attributes,
    RBACSnapshot,
    UserInfo,
    chat_user_id,
    user_info_for_chat_user,
)


@pytest.fixture(scope="module")
def snapshot() -> RBACSnapshot:
    return RBACSnapshot.from_objects(homelab())


def test_bindings_everywhere_spans_namespaces_and_groups(snapshot):
    grandma = UserInfo.authenticated("grandma", ("family",))
    assert [b.name for b in snapshot.bindings_everywhere(grandma) if b.namespace] == ["family-view"]
    assert snapshot.bindings_for(grandma, "home") == [
        b for b in snapshot.bindings_for(grandma, "") if b.kind == "ClusterRoleBinding"
    ]
    ci = UserInfo.service_account("home", "ci")
    assert "ci-edit" in [b.name for b in snapshot.bindings_everywhere(ci)]


def test_authorizer_for_answers_exactly_like_authorize(snapshot):
    users = [
        UserInfo.authenticated("grandma", ("family",)),
        UserInfo.service_account("home", "ci"),
        UserInfo.authenticated("admin"),
        UserInfo.anonymous(),
    ]
    targets = [
        ("pods", "", ""),
        ("pods", "", "log"),
        ("deployments", "apps", ""),
        ("secrets", "", ""),
    ]
    asks = [
        Attributes(verb, resource, group, sub, namespace=ns)
        for verb in ("get", "list", "create", "delete")
        for resource, group, sub in targets
        for ns in ("", "home", "media")
    ]
    for user in users:
        check = snapshot.authorizer_for(user)
        for ask in asks:
            assert check(ask) == snapshot.authorize(user, ask), (user, ask)


def test_chat_mentions_resolve_through_the_kernels_identity_map():
    identities = IdentityMap.from_config(
        {
            "users": {"42": {"user": "alice@example.com", "groups": ["sre"]}},
            "roles": {"7": {"groups": ["oncall"]}},
        }
    )
    assert [chat_user_id(t) for t in ("@42", "<@42>", "<@!42>", "42", "user:42")] == [
        "42",
        "42",
        "42",
        None,
        None,
    ]
    alice = user_info_for_chat_user(identities, "42", ["7"])
    assert alice.name == "alice@example.com"
    assert alice.groups == ("sre", "oncall", "system:authenticated")
    with pytest.raises(PermissionDenied, match="not mapped"):
        user_info_for_chat_user(identities, "43")
