"""Unused permissions and unusual denials from an audit log, against the homelab sandbox."""

from __future__ import annotations

import json


def event(user, verb, resource, namespace="", *, groups=(), decision="allow", at="10:00:00",
          group="", subresource="", stage="ResponseComplete"):  # fmt: skip
    ref = {"resource": resource, "namespace": namespace, "apiGroup": group}
    if subresource:
        ref["subresource"] = subresource
    return json.dumps(
        {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "stage": stage,
            "verb": verb,
            "user": {"username": user, "groups": [*groups, "system:authenticated"]},
            "objectRef": ref,
            "requestReceivedTimestamp": f"2026-11-20T{at}.000000Z",
            "annotations": {"authorization.k8s.io/decision": decision},
        }
    )


CI = "system:serviceaccount:home:ci"
FAMILY = ("family",)
CI_GROUPS = ("system:serviceaccounts", "system:serviceaccounts:home")
LOG = "\n".join(
    [
        event(CI, "create", "deployments", "home", groups=CI_GROUPS, group="apps", at="09:00:00"),
        event(CI, "create", "deployments", "home", groups=CI_GROUPS, stage="RequestReceived"),
        event(CI, "get", "secrets", "media", groups=CI_GROUPS, decision="forbid", at="09:30:00"),
        event(CI, "get", "secrets", "media", groups=CI_GROUPS, decision="forbid", at="09:31:00"),
        "{this is not json",
        json.dumps({"kind": "Pod", "apiVersion": "v1"}),
        event("grandma", "list", "pods", "media", groups=("family",)),
        event("grandma", "delete", "pods", "media", groups=("family",), decision="forbid"),
        "",
        json.dumps({"kind": "Event", "apiVersion": "audit.k8s.io/v1", "verb": "get"}),
        event("grandma", "get", "pods", "media", groups=FAMILY, subresource="log", at="11:15:00"),
    ]
)  # fmt: skip


async def test_unused_permissions_and_denials(rbac, tmp_path):
    path = tmp_path / "audit.log"
    path.write_text(LOG)
    result = await rbac.run(f"/rbac usage log:{path}")
    assert result.ok, result.text
    data = result.reply.data
    assert data["log"]["requests"] == 6 and data["log"]["other_stages"] == 1
    assert data["log"]["malformed"] == 3
    assert [e["line"] for e in data["log"]["malformed_examples"]] == [5, 6, 10]
    assert data["log"]["malformed_examples"][2]["problem"] == "no user.username"
    assert data["log"]["window"] == {
        "start": "2026-11-20T09:00:00.000000Z",
        "end": "2026-11-20T11:15:00.000000Z",
    }
    unused: dict[str, set[str]] = {}
    for item in data["unused"]:
        label = f"{item['subject']['kind']}:{item['subject']['name']}"
        unused.setdefault(label, set()).add(item["permission"])
    assert "deployments.apps: create" not in unused["ServiceAccount:ci"]  # it was used
    assert "deployments.apps: delete" in unused["ServiceAccount:ci"]
    assert "secrets: delete" in unused["ServiceAccount:ci"]
    # the family group used list pods and pods/log (through its member), nothing else
    assert "pods: list" not in unused["Group:family"]
    assert "pods/log: get" not in unused["Group:family"]
    assert {"pods: get", "configmaps: list"} <= unused["Group:family"]
    anomalies = {(a["user"], a["request"]): a for a in data["anomalies"]}
    secret = anomalies[(CI, "get secrets in namespace 'media'")]
    assert secret["severity"] == "high" and secret["count"] == 2
    assert "aims at secrets" in secret["why"]
    delete = anomalies[("grandma", "delete pods in namespace 'media'")]
    assert delete["severity"] == "medium"
    assert "a write by an account that may only read" in delete["why"]
    card = result.reply.cards[0]
    assert "3 malformed lines skipped (first: line 5: not JSON" in card.description
    assert result.reply.tables[0].title == "Suspicious denials"


async def test_a_log_without_events_is_refused_clearly(rbac, tmp_path):
    path = tmp_path / "junk.log"
    path.write_text("hello\nworld\n")
    result = await rbac.run(f"/rbac usage log:{path}")
    assert result.status != "ok"
    assert "no audit.k8s.io/v1 Event in the log (2 lines; line 1: not JSON" in result.text
