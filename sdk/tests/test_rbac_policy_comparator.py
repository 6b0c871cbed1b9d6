"""Ports of ``pkg/registry/rbac/validation/policy_comparator_test.go``: ``Covers``, the
escalation check (every ``TestCovers*`` function), and ``TestNonResourceURLCovers``."""

from __future__ import annotations

from typing import Any

import pytest

from clustercord_sdk.rbac import PolicyRule, covers, non_resource_url_covers


def r(**fields: Any) -> dict[str, Any]:
    """A rule in API form from short keyword names (g, v, res, names, urls)."""
    keys = {"g": "apiGroups", "v": "verbs", "res": "resources", "names": "resourceNames"}
    keys["urls"] = "nonResourceURLs"
    return {keys[k]: list(v) for k, v in fields.items()}


Rules = list[dict[str, Any]]
COVERS_CASES: list[tuple[str, Rules, Rules, bool, Rules]] = [
    ("TestCoversExactMatch",
     [r(g=["v1"], v=["get"], res=["builds"])], [r(g=["v1"], v=["get"], res=["builds"])], True, []),
    ("TestCoversMultipleRulesCoveringSingleRule",
     [r(g=["v1"], v=["delete"], res=["deployments"]), r(g=["v1"], v=["delete"], res=["builds"]),
      r(g=["v1"], v=["update"], res=["builds", "deployments"])],
     [r(g=["v1"], v=["delete", "update"], res=["builds", "deployments"])], True, []),
    ("TestCoversMultipleAPIGroupsCoveringSingleRule",
     [r(g=[grp], v=["delete"], res=["deployments"]) for grp in ("group1", "group2")]
     + [r(g=[grp], v=["delete"], res=["builds"]) for grp in ("group1", "group2")]
     + [r(g=[grp], v=["update"], res=["builds", "deployments"]) for grp in ("group1", "group2")],
     [r(g=["group1", "group2"], v=["delete", "update"], res=["builds", "deployments"])], True, []),
    ("TestCoversSingleAPIGroupsCoveringMultiple",
     [r(g=["group1", "group2"], v=["delete", "update"], res=["builds", "deployments"])],
     [r(g=[grp], v=["delete"], res=["deployments"]) for grp in ("group1", "group2")]
     + [r(g=[grp], v=["delete"], res=["builds"]) for grp in ("group1", "group2")]
     + [r(g=[grp], v=["update"], res=["builds", "deployments"]) for grp in ("group1", "group2")],
     True, []),
    ("TestCoversMultipleRulesMissingSingleVerbResourceCombination",
     [r(g=["v1"], v=["delete", "update"], res=["builds", "deployments"]),
      r(g=["v1"], v=["delete"], res=["pods"])],
     [r(g=["v1"], v=["delete", "update"], res=["builds", "deployments", "pods"])],
     False, [r(g=["v1"], v=["update"], res=["pods"])]),
    ("TestCoversAPIGroupStarCoveringMultiple",
     [r(g=["*"], v=["get"], res=["roles"])], [r(g=["group1", "group2"], v=["get"], res=["roles"])],
     True, []),
    ("TestCoversEnumerationNotCoveringAPIGroupStar",
     [r(g=["dummy-group"], v=["get"], res=["roles"])], [r(g=["*"], v=["get"], res=["roles"])],
     False, [r(g=["*"], v=["get"], res=["roles"])]),
    ("TestCoversAPIGroupStarCoveringStar",
     [r(g=["*"], v=["get"], res=["roles"])], [r(g=["*"], v=["get"], res=["roles"])], True, []),
    ("TestCoversVerbStarCoveringMultiple",
     [r(g=["v1"], v=["*"], res=["roles"])], [r(g=["v1"], v=["watch", "list"], res=["roles"])],
     True, []),
    ("TestCoversEnumerationNotCoveringVerbStar",
     [r(g=["v1"], v=["get", "list", "watch", "create", "update", "delete", "exec"], res=["roles"])],
     [r(g=["v1"], v=["*"], res=["roles"])], False, [r(g=["v1"], v=["*"], res=["roles"])]),
    ("TestCoversVerbStarCoveringStar",
     [r(g=["v1"], v=["*"], res=["roles"])], [r(g=["v1"], v=["*"], res=["roles"])], True, []),
    ("TestCoversResourceStarCoveringMultiple",
     [r(g=["v1"], v=["get"], res=["*"])],
     [r(g=["v1"], v=["get"], res=["resourcegroup:deployments"])], True, []),
    ("TestCoversEnumerationNotCoveringResourceStar",
     [r(g=["v1"], v=["get"], res=["roles", "resourcegroup:deployments"])],
     [r(g=["v1"], v=["get"], res=["*"])], False, [r(g=["v1"], v=["get"], res=["*"])]),
    ("TestCoversResourceStarCoveringStar",
     [r(g=["v1"], v=["get"], res=["*"])], [r(g=["v1"], v=["get"], res=["*"])], True, []),
    ("TestCoversResourceNameEmptyCoveringMultiple",
     [r(g=["v1"], v=["get"], res=["pods"], names=[])],
     [r(g=["v1"], v=["get"], res=["pods"], names=["foo", "bar"])], True, []),
    ("TestCoversEnumerationNotCoveringResourceNameEmpty",
     [r(g=["v1"], v=["get"], res=["pods"], names=["foo", "bar"])],
     [r(g=["v1"], v=["get"], res=["pods"], names=[])],
     False, [r(g=["v1"], v=["get"], res=["pods"])]),
    ("TestCoversNonResourceURLs",
     [r(urls=["/apis"], v=["*"])], [r(urls=["/apis"], v=["*"])], True, []),
    ("TestCoversNonResourceURLsStar",
     [r(urls=["*"], v=["*"])], [r(urls=["/apis", "/apis/v1", "/"], v=["*"])], True, []),
    ("TestCoversNonResourceURLsStarAfterPrefixDoesntCover",
     [r(urls=["/apis/*"], v=["*"])], [r(urls=["/apis", "/apis/v1"], v=["get"])],
     False, [r(urls=["/apis"], v=["get"])]),
    ("TestCoversNonResourceURLsStarAfterPrefix",
     [r(urls=["/apis/*"], v=["*"])], [r(urls=["/apis/v1/foo", "/apis/v1"], v=["get"])], True, []),
    ("TestCoversNonResourceURLsWithOtherFields",
     [r(g=["v1"], v=["get"], res=["builds"], urls=["/apis"])],
     [r(g=["v1"], v=["get"], res=["builds"], urls=["/apis"])], True, []),
    ("TestCoversNonResourceURLsWithOtherFieldsFailure",
     [r(g=["v1"], v=["get"], res=["builds"])],
     [r(g=["v1"], v=["get"], res=["builds"], urls=["/apis"])],
     False, [r(urls=["/apis"], v=["get"])]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("owner", "requested", "expected", "uncovered"),
    [pytest.param(o, s, e, u, id=name) for name, o, s, e, u in COVERS_CASES],
)
def test_covers(
    owner: list[dict[str, Any]],
    requested: list[dict[str, Any]],
    expected: bool,
    uncovered: list[dict[str, Any]],
) -> None:
    """The ``TestCovers*`` functions (``escalationTest.test``: same verdict, same uncovered
    atoms in any order)."""
    covered, actual = covers(owner, requested)
    assert covered is expected
    assert sorted(actual, key=str) == sorted(map(PolicyRule.from_dict, uncovered), key=str)


@pytest.mark.parametrize(
    ("owner", "requested", "expected"),
    [
        ("*", "/api", True),
        ("/api", "/api", True),
        ("/apis", "/api", False),
        ("/api/v1", "/api", False),
        ("/api/v1", "/api/v1", True),
        ("/api/*", "/api/v1", True),
        ("/api/*", "/api", False),
        ("/api/*/*", "/api/v1", False),
        ("/*/v1/*", "/api/v1", False),
    ],
)
def test_non_resource_url_covers(owner: str, requested: str, expected: bool) -> None:
    """TestNonResourceURLCovers."""
    assert non_resource_url_covers(owner, requested) is expected


def test_covers_star_subresource() -> None:
    """From ``resourceCoversAll`` (no Go table case): ``*/scale`` covers ``deployments/scale``
    but not ``deployments``; ``pods`` does not cover ``pods/log``."""
    owner = [r(g=["apps"], v=["update"], res=["*/scale", "pods"])]
    assert covers(owner, [r(g=["apps"], v=["update"], res=["deployments/scale"])])[0]
    assert not covers(owner, [r(g=["apps"], v=["update"], res=["deployments"])])[0]
    assert not covers(owner, [r(g=["apps"], v=["update"], res=["pods/log"])])[0]
