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
            named = any(subject_applies(user, s, "") for s in allowed_subjects)
            if not where:
                # without a namespace, who-can also lists RoleBinding subjects (each allowed in
                # its own namespace): the cluster-wide review agrees only on cluster bindings
                named = any(
                    subject_applies(user, s, "")
                    for b in result.reply.data["bindings"]
                    if b["kind"] == "ClusterRoleBinding"
                    for s in b["subjects"]
                )
            assert answer["status"]["allowed"] is named, (line, user, answer["status"])
