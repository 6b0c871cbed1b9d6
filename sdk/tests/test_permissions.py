"""The permission grammar, its RBAC compiler and ``covers``."""

from __future__ import annotations

from typing import Any

import pytest

from clustercord_sdk.permissions import (
    Permission,
    PermissionError_,
    compile_rules,
    covers,
    parse_permission,
    parse_permissions,
)


@pytest.mark.parametrize(
    ("text", "expected", "verbs"),
    [
        ("pods:read", Permission("pods", "", None, "read"), ("get", "list", "watch")),
        (
            "deployments.apps:write",
            Permission("deployments", "apps", None, "write"),
            ("create", "update", "patch", "delete"),
        ),
        ("pods/exec:create", Permission("pods", "", "exec", "create"), ("create",)),
        (
            "widgets.example.com:read",
            Permission("widgets", "example.com", None, "read"),
            ("get", "list", "watch"),
        ),
        ("*:read", Permission("*", "", None, "read"), ("get", "list", "watch")),
        ("nodes/proxy:get", Permission("nodes", "", "proxy", "get"), ("get",)),
        ("pods:*", Permission("pods", "", None, "*"), ("*",)),
        ("users:impersonate", Permission("users", "", None, "impersonate"), ("impersonate",)),
    ],
)
def test_parse(text: str, expected: Permission, verbs: tuple[str, ...]) -> None:
    permission = parse_permission(text)
    assert permission == expected
    assert str(permission) == text
    assert permission.verbs == verbs


def test_rbac_resource_includes_the_subresource() -> None:
    assert parse_permission("pods/exec:create").rbac_resource == "pods/exec"
    assert parse_permission("pods:read").rbac_resource == "pods"


def test_surrounding_whitespace_is_ignored() -> None:
    assert parse_permission("  pods:read ") == parse_permission("pods:read")


def test_parse_permissions_parses_each() -> None:
    assert parse_permissions(["pods:read", "nodes:get"]) == [
        Permission("pods", "", None, "read"),
        Permission("nodes", "", None, "get"),
    ]


@pytest.mark.parametrize("text", ["pods", "pods:", "Pods:read", "pods/exec/x:get", " : ", ""])
def test_malformed_permission_shows_the_grammar(text: str) -> None:
    with pytest.raises(PermissionError_) as info:
        parse_permission(text)
    message = str(info.value)
    assert repr(text) in message
    assert "RESOURCE[.GROUP][/SUBRESOURCE]:VERB" in message
    assert "pods:read" in message


def test_unknown_verb_lists_the_known_ones() -> None:
    with pytest.raises(PermissionError_) as info:
        parse_permission("pods:fly")
    message = str(info.value)
    assert "unknown verb 'fly'" in message
    assert "read, write" in message
    assert "escalate" in message and "get" in message


@pytest.mark.parametrize("value", [None, 42, ["pods:read"]])
def test_non_string_permission(value: Any) -> None:
    with pytest.raises(PermissionError_, match="must be a string"):
        parse_permission(value)


def test_permission_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_permission("pods")


# -- compile_rules -------------------------------------------------------------------


def test_same_group_and_verbs_merge_resources() -> None:
    assert compile_rules(["services:read", "pods:read"]) == [
        {"apiGroups": [""], "resources": ["pods", "services"], "verbs": ["get", "list", "watch"]}
    ]


def test_different_groups_stay_separate() -> None:
    rules = compile_rules(["pods:read", "deployments.apps:read"])
    assert rules == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "watch"]},
    ]


def test_subresource_is_kept_as_resource_slash_sub() -> None:
    assert compile_rules(["pods/exec:create"]) == [
        {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]}
    ]


def test_read_and_write_on_one_resource_union_their_verbs() -> None:
    assert compile_rules(["deployments.apps:read", "deployments.apps:write"]) == [
        {
            "apiGroups": ["apps"],
            "resources": ["deployments"],
            "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
        }
    ]


def test_resources_with_different_verb_sets_do_not_merge() -> None:
    rules = compile_rules(["pods:read", "services:read", "pods/log:get", "pods:delete"])
    assert rules == [
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["delete", "get", "list", "watch"]},
    ]


def test_compile_accepts_parsed_permissions_and_duplicates() -> None:
    parsed = parse_permission("pods:read")
    assert compile_rules([parsed, "pods:read", "pods:get"]) == compile_rules(["pods:read"])


def test_compile_rejects_bad_strings() -> None:
    with pytest.raises(PermissionError_):
        compile_rules(["pods:read", "pods"])


def test_compile_nothing() -> None:
    assert compile_rules([]) == []


# -- covers --------------------------------------------------------------------------


def perms(*texts: str) -> list[Permission]:
    return parse_permissions(texts)


@pytest.mark.parametrize(
    ("granted", "wanted", "expected"),
    [
        (["pods:read"], ["pods:get"], True),
        (["pods:read"], ["pods:read"], True),
        (["pods:get", "pods:list", "pods:watch"], ["pods:read"], True),
        (["pods:get", "pods:list"], ["pods:read"], False),
        (["pods:read"], ["pods:delete"], False),
        (["pods:read"], ["services:get"], False),
        (["pods:read"], ["pods/log:get"], False),
        (["deployments.apps:read"], ["deployments:read"], False),
        (["deployments:read"], ["deployments.apps:read"], False),
        (["pods:write", "pods:read"], ["pods:read", "pods:patch"], True),
        ([], ["pods:get"], False),
        ([], [], True),
        # wildcards
        (["pods:*"], ["pods:delete"], True),
        (["pods:*"], ["pods:escalate"], True),
        (["pods:read"], ["pods:*"], False),
        (["*:read"], ["configmaps:list"], True),
        (["*:read"], ["pods/log:get"], True),
        (["*:read"], ["deployments.apps:get"], False),
        (["*:read"], ["pods:create"], False),
        (["pods:read"], ["*:read"], False),
        (["*/scale:get"], ["deployments.apps/scale:get"], False),
        (["*.apps/scale:get"], ["deployments.apps/scale:get"], True),
        (["*.apps/scale:get"], ["deployments.apps/status:get"], False),
        (["*.apps/scale:get"], ["deployments.apps:get"], False),
    ],
)
def test_covers(granted: list[str], wanted: list[str], expected: bool) -> None:
    assert covers(perms(*granted), perms(*wanted)) is expected


def test_covers_has_no_resource_slash_star_wildcard_like_kubernetes_rbac():
    granted = [Permission("pods", "", "*", "get")]  # the grammar cannot even express it
    assert not covers(granted, [parse_permission("pods/exec:get")])
    assert covers([parse_permission("*:get")], [parse_permission("pods/exec:get")])
