"""Property: ``/rbac who-can`` names exactly the identities the sandbox's SubjectAccessReview
allows, on randomly generated RBAC sets (the seed is sandbox/tests/test_rbac.py's)."""

from __future__ import annotations

import json
import ssl
import urllib.request
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clustercord_sdk.rbac import UserInfo, subject_applies

RBAC = "rbac.authorization.k8s.io"
VERBS = st.sampled_from(["get", "list", "create", "delete", "*"])
RESOURCES = st.sampled_from(["pods", "secrets", "pods/log", "deployments", "*", "*/scale"])
GROUPS = st.sampled_from(["", "apps", "*"])
RULES = st.lists(
    st.fixed_dictionaries(
        {
            "verbs": st.lists(VERBS, min_size=1, max_size=2, unique=True),
            "apiGroups": st.lists(GROUPS, min_size=1, max_size=2, unique=True),
            "resources": st.lists(RESOURCES, min_size=1, max_size=2, unique=True),
            "resourceNames": st.lists(st.sampled_from(["a", "b"]), max_size=1),
        }
    ),
    min_size=1,
    max_size=3,
)
#: Subjects by index into identities()
SUBJECTS = st.lists(st.integers(0, 6), min_size=1, max_size=3, unique=True)
BINDINGS = st.lists(
    st.tuples(st.sampled_from(["role", "cluster-role-here", "cluster-role-wide"]), SUBJECTS),
    min_size=1,
    max_size=4,
)
ASKS = st.lists(
    st.tuples(
        st.sampled_from(["get", "list", "create", "delete"]),
        st.sampled_from(["pods", "secrets", "deployments", "pods/log", "deployments/scale"]),
        st.sampled_from(["", "a"]),
        st.booleans(),
    ),
    min_size=1,
    max_size=4,
)


def review(api: Api, user: UserInfo, attributes: dict[str, str]) -> bool:
    body = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {"user": user.name, "groups": list(user.groups), "resourceAttributes": attributes},
    }
    answer = api.call("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", body)
    return bool(answer["status"]["allowed"])


class Api:
    def __init__(self, server: Any) -> None:
        self.url = server.url
        self.token = server.admin_token
        self.context = ssl.create_default_context(cadata=server.certificate.ca_pem.decode())

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, context=self.context) as response:
            return json.loads(response.read())


def identities(tag: str, ns: str, other: str) -> list[tuple[dict[str, str], UserInfo]]:
    """The seven subjects of an example and the identity each stands for at the API server:
    users u0-u2 (each in group g0 or g1), members of g0 and g1, ServiceAccount s0 of the
    example's namespace and s1 of another one."""
    out = []
    for i in range(3):
        user = UserInfo.authenticated(f"{tag}-u{i}", (f"{tag}-g{i % 2}",))
        out.append(({"apiGroup": RBAC, "kind": "User", "name": user.name}, user))
    for i in range(2):
        member = UserInfo.authenticated(f"{tag}-x{i}", (f"{tag}-g{i}",))
        out.append(({"apiGroup": RBAC, "kind": "Group", "name": f"{tag}-g{i}"}, member))
    for namespace, name in ((ns, "s0"), (other, "s1")):
        subject = {"kind": "ServiceAccount", "name": name, "namespace": namespace}
        out.append((subject, UserInfo.service_account(namespace, name)))
    return out


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(role_rules=RULES, cluster_rules=RULES, bindings=BINDINGS, asks=ASKS)
async def test_who_can_equals_subject_access_review(
    rbac_fresh, role_rules, cluster_rules, bindings, asks
):
    harness, server = rbac_fresh
    api = Api(server)
    tag = f"p{uuid.uuid4().hex[:6]}"
    ns, other = tag, f"{tag}-o"
    for name in (ns, other):
        api.call("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    base = f"/apis/{RBAC}/v1"
    api.call(
        "POST", f"{base}/namespaces/{ns}/roles", {"metadata": {"name": "r"}, "rules": role_rules}
    )
    api.call(
        "POST", f"{base}/clusterroles", {"metadata": {"name": f"cr-{tag}"}, "rules": cluster_rules}
    )
    people = identities(tag, ns, other)
    for i, (kind, chosen) in enumerate(bindings):
        subjects = [people[j][0] for j in chosen]
        if kind == "role":
            ref = {"apiGroup": RBAC, "kind": "Role", "name": "r"}
        else:
            ref = {"apiGroup": RBAC, "kind": "ClusterRole", "name": f"cr-{tag}"}
        body = {"metadata": {"name": f"b{i}-{tag}"}, "roleRef": ref, "subjects": subjects}
        if kind == "cluster-role-wide":
            api.call("POST", f"{base}/clusterrolebindings", body)
        else:
            api.call("POST", f"{base}/namespaces/{ns}/rolebindings", body)

    for verb, resource, name, namespaced in asks:
        where = ns if namespaced else ""
        base_resource, _, sub = resource.partition("/")
        group = "apps" if base_resource == "deployments" else ""
        line = f"/rbac who-can verb:{verb} resource:{resource}"
        line += f" namespace:{where}" if where else ""
        line += f" name:{name}" if name else ""
        result = await harness.run(line)
        assert result.ok, result.text
        allowed_subjects = result.reply.data["subjects"]
        for _, user in people:
            attributes = {"verb": verb, "group": group, "resource": base_resource}
            attributes |= {"subresource": sub, "name": name, "namespace": where}
            review = {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {
                    "user": user.name,
                    "groups": list(user.groups),
                    "resourceAttributes": attributes,
                },
            }
            answer = api.call("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", review)
            # Without a namespace the request is cluster-wide: who-can answers it from
            # ClusterRoleBindings alone, as Kubernetes' subject locator and the review do.
            named = any(subject_applies(user, s, where) for s in allowed_subjects)
            assert answer["status"]["allowed"] is named, (line, user, answer["status"])
        data = result.reply.data
        assert len(data["subjects"]) == len(data["allowed"]) == len(result.reply.tables[0].rows)
        assert len({tuple(s.values()) for s in data["subjects"]}) == len(data["subjects"])


async def test_the_issues_example_a_cluster_scoped_question(rbac_fresh):
    """Issue 18: ``who-can verb:get resource:namespaces`` listed user:alice (a RoleBinding of
    edit in team-a), said "5 subjects" above 6 rows and named group:system:masters twice."""
    harness, server = rbac_fresh
    api = Api(server)
    tag = f"i{uuid.uuid4().hex[:6]}"
    team = f"{tag}-team-a"
    api.call("POST", "/api/v1/namespaces", {"metadata": {"name": team}})
    alice = {"apiGroup": RBAC, "kind": "User", "name": f"{tag}-alice"}
    api.call(
        "POST",
        f"/apis/{RBAC}/v1/namespaces/{team}/rolebindings",
        {
            "metadata": {"name": "alice-edit"},
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "edit"},
            "subjects": [alice],
        },
    )
    result = await harness.run("/rbac who-can verb:get resource:namespaces")
    assert result.ok, result.text
    data, table = result.reply.data, result.reply.tables[0]
    labels = [row[0] for row in table.rows]
    assert f"user:{tag}-alice" not in labels
    assert table.title.startswith(f"{len(table.rows)} subjects may ")
    assert len(labels) == len(set(labels)) == len(data["subjects"])
    masters = next(a for a in data["allowed"] if a["name"] == "system:masters")
    ways = {(w["binding"] or {}).get("name") for w in masters["ways"]}
    assert ways == {None, "cluster-admin"}  # a privileged group, and its bootstrap binding
    assert labels.count("group:system:masters") == 1
    assert "privileged group" in table.rows[labels.index("group:system:masters")][1]
    # Kubernetes agrees with every row, and says no to alice, as can-i does.
    asked = {"verb": "get", "resource": "namespaces"}
    alice_user = UserInfo.authenticated(alice["name"])
    assert review(api, alice_user, asked) is False
    can = await harness.run(f"/rbac can-i subject:user:{tag}-alice verb:get resource:namespaces")
    assert can.reply.data["allowed"] is False
    for subject in data["subjects"]:
        if subject["kind"] == "User":
            assert review(api, UserInfo.authenticated(subject["name"]), asked), subject
        elif subject["kind"] == "Group":
            member = UserInfo.authenticated(f"{tag}-member", (subject["name"],))
            assert review(api, member, asked), subject
    # The namespaced view, apart: alice may get her own namespace's object, only there.
    wide = await harness.run("/rbac who-can verb:get resource:namespaces in_namespaces:true")
    assert wide.reply.data["subjects"] == data["subjects"]
    local = [a for a in wide.reply.data["namespaced"] if a["name"] == alice["name"]]
    assert [w["scope"] for w in local[0]["ways"]] == [team]
    assert review(api, alice_user, {**asked, "namespace": team, "name": team}) is True
    assert f"user:{tag}-alice" in [row[0] for row in wide.reply.tables[1].rows]
