"""Authentication, impersonation, RBAC authorization and access reviews of the sandbox.

Most tests drive the real kubectl (`auth can-i`, `auth whoami`, `--as`, a 403 on `get`) with
bearer tokens registered on the server; the property test checks that the sandbox's
SelfSubjectAccessReview answers exactly what the SDK's `RBACSnapshot.authorize` answers.
"""

from __future__ import annotations

import json
import ssl
import urllib.request
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clustercord_sandbox import fixtures, protowire
from clustercord_sandbox.auth import DATA, bootstrap_objects, forbidden
from clustercord_sandbox.background import BackgroundSandbox
from clustercord_sandbox.objects import WriteOptions
from clustercord_sandbox.server import SandboxServer
from clustercord_sdk.rbac import Attributes, RBACSnapshot, UserInfo

VIEW_TOKEN = "alice-view-token"
NOBODY_TOKEN = "bob-no-bindings-token"
IMPERSONATOR_TOKEN = "carol-impersonator-token"
RBAC = "rbac.authorization.k8s.io"


def _binding(kind: str, name: str, role_kind: str, role: str, user: str, ns: str = "") -> str:
    namespace = f"\n  namespace: {ns}" if ns else ""
    return f"""\
apiVersion: rbac.authorization.k8s.io/v1
kind: {kind}
metadata:
  name: {name}{namespace}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: {role_kind}, name: {role}}}
subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: {user}}}]
"""


IMPERSONATE_USERS = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: impersonate-users}
rules: [{apiGroups: [""], resources: [users], verbs: [impersonate]}]
"""


@pytest.fixture(scope="module", autouse=True)
def policy(sandbox: BackgroundSandbox, server: SandboxServer) -> None:
    """Bootstrap RBAC, namespaces dev/other, and three users: alice (view in dev), bob
    (no bindings) and carol (may impersonate users, not groups)."""

    async def load() -> None:
        namespaces = [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}
            for n in ("dev", "other")
        ]
        fixtures.load(server.api, namespaces)
        for obj in bootstrap_objects():  # the `empty` fixture may hold an older policy
            rt = server.registry.by_kind(obj["apiVersion"], obj["kind"])
            assert rt is not None
            meta = obj["metadata"]
            current = server.store.get(rt.group, rt.plural, meta.get("namespace", ""), meta["name"])
            if current is None:
                fixtures.load(server.api, [obj])
            elif current.get("rules") != obj.get("rules") and obj.get("aggregationRule") is None:
                current["rules"] = obj["rules"]
                server.api.update(
                    rt, meta.get("namespace", ""), meta["name"], current, WriteOptions()
                )

    sandbox.call(load())
    server.add_token(VIEW_TOKEN, UserInfo.authenticated("alice"))
    server.add_token(NOBODY_TOKEN, UserInfo.authenticated("bob"))
    server.add_token(IMPERSONATOR_TOKEN, UserInfo.authenticated("carol", ("team",)))


@pytest.fixture(scope="module", autouse=True)
def bindings(policy: None, kubeconfig: Any) -> None:
    """alice views dev; carol impersonates users: created with kubectl, like a user would."""
    from .conftest import KUBECTL

    if KUBECTL is None:
        return
    import subprocess

    manifest = "---\n".join(
        [
            _binding("RoleBinding", "alice-view", "ClusterRole", "view", "alice", "dev"),
            IMPERSONATE_USERS,
            _binding(
                "ClusterRoleBinding",
                "carol-impersonates",
                "ClusterRole",
                "impersonate-users",
                "carol",
            ),
        ]
    )
    subprocess.run(
        [KUBECTL, "--kubeconfig", str(kubeconfig), "apply", "-f", "-"],
        input=manifest,
        text=True,
        check=True,
        capture_output=True,
    )


# -- kubectl auth can-i ------------------------------------------------------------------------


def test_admin_can_list_pods(kubectl):
    assert kubectl("auth", "can-i", "list", "pods", "-n", "dev").stdout.strip() == "yes"


def test_view_user_can_list_pods_in_its_namespace_only(kubectl):
    allowed = kubectl("--token", VIEW_TOKEN, "auth", "can-i", "list", "pods", "-n", "dev")
    assert allowed.stdout.strip() == "yes"
    denied = kubectl(
        "--token", VIEW_TOKEN, "auth", "can-i", "list", "pods", "-n", "other", check=False
    )
    assert (denied.returncode, denied.stdout.strip()) == (1, "no")


def test_view_user_cannot_create_deployments(kubectl):
    result = kubectl(
        "--token", VIEW_TOKEN, "auth", "can-i", "create", "deployments", "-n", "dev", check=False
    )
    assert (result.returncode, result.stdout.strip()) == (1, "no")


def test_can_i_list_shows_the_view_rules(kubectl):
    out = kubectl("--token", VIEW_TOKEN, "auth", "can-i", "--list", "-n", "dev").stdout
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:] if line[:1] != " "}
    assert rows["pods"][-3:] == ["[get", "list", "watch]"]
    assert rows["deployments.apps"][-3:] == ["[get", "list", "watch]"]
    assert rows["selfsubjectaccessreviews.authorization.k8s.io"][-1] == "[create]"
    assert "secrets" not in rows
    assert "[/version]" in out  # system:public-info-viewer, from the bootstrap policy


def test_rolebinding_created_with_kubectl_takes_effect_at_once(kubectl, unique):
    def can_list() -> str:
        args = ("auth", "can-i", "list", "configmaps", "-n", "dev")
        return kubectl("--token", NOBODY_TOKEN, *args, check=False).stdout.strip()

    assert can_list() == "no"
    manifest = _binding("RoleBinding", unique, "ClusterRole", "view", "bob", "dev")
    kubectl("apply", "-f", "-", input=manifest)
    assert can_list() == "yes"
    kubectl("delete", "rolebinding", unique, "-n", "dev")
    assert can_list() == "no"


# -- 401 / 403 ---------------------------------------------------------------------------------


def test_unknown_token_is_unauthorized(kubectl):
    result = kubectl("--token", "not-a-token", "get", "pods", check=False)
    assert result.returncode == 1
    assert "Unauthorized" in result.stderr


def test_view_user_gets_the_real_servers_forbidden_message(kubectl):
    result = kubectl("--token", VIEW_TOKEN, "get", "secrets", "-n", "dev", check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        'Error from server (Forbidden): secrets is forbidden: User "alice" cannot list resource '
        '"secrets" in API group "" in the namespace "dev"'
    )


def test_view_user_reads_pods_in_dev(kubectl):
    result = kubectl("--token", VIEW_TOKEN, "get", "pods", "-n", "dev")
    assert "No resources found in dev namespace." in result.stderr


def test_forbidden_status_for_named_and_cluster_scoped_requests():
    user = UserInfo.authenticated("alice")
    named = forbidden(user, Attributes("get", "deployments", "apps", "scale", "web", "dev"))
    assert named.message == (
        'deployments.apps "web" is forbidden: User "alice" cannot get resource '
        '"deployments/scale" in API group "apps" in the namespace "dev"'
    )
    assert named.details == {"kind": "deployments", "group": "apps", "name": "web"}
    cluster = forbidden(user, Attributes("list", "nodes"))
    assert cluster.message == (
        'nodes is forbidden: User "alice" cannot list resource "nodes" in API group "" '
        "at the cluster scope"
    )
    path = forbidden(user, Attributes.non_resource("get", "/metrics"))
    assert path.message == 'forbidden: User "alice" cannot get path "/metrics"'


# -- impersonation -----------------------------------------------------------------------------


def test_admin_may_impersonate(kubectl):
    assert "No resources found" in kubectl("--as=alice", "get", "pods", "-n", "dev").stderr
    denied = kubectl("--as=alice", "get", "secrets", "-n", "dev", check=False)
    assert 'User "alice" cannot list resource "secrets"' in denied.stderr


def test_non_admin_may_not_impersonate(kubectl):
    result = kubectl("--token", VIEW_TOKEN, "--as=bob", "get", "pods", "-n", "dev", check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        'Error from server (Forbidden): users "bob" is forbidden: User "alice" cannot '
        'impersonate resource "users" in API group "" at the cluster scope'
    )


def test_impersonating_users_does_not_allow_groups(kubectl):
    as_alice = kubectl("--token", IMPERSONATOR_TOKEN, "--as=alice", "get", "pods", "-n", "dev")
    assert "No resources found" in as_alice.stderr
    result = kubectl(
        "--token", IMPERSONATOR_TOKEN, "--as=alice", "--as-group=ops", "get", "pods", check=False
    )
    assert 'groups "ops" is forbidden: User "carol" cannot impersonate resource "groups"' in (
        result.stderr
    )


# -- kubectl auth whoami -----------------------------------------------------------------------


def test_whoami(kubectl):
    admin = json.loads(kubectl("auth", "whoami", "-o", "json").stdout)
    assert admin["kind"] == "SelfSubjectReview"
    assert admin["status"]["userInfo"]["groups"] == ["system:masters", "system:authenticated"]
    alice = json.loads(kubectl("--token", VIEW_TOKEN, "auth", "whoami", "-o", "json").stdout)
    assert alice["status"]["userInfo"]["username"] == "alice"


def test_whoami_as_a_service_account_gets_its_groups(kubectl):
    info = json.loads(
        kubectl("--as=system:serviceaccount:dev:builder", "auth", "whoami", "-o", "json").stdout
    )["status"]["userInfo"]
    assert info == {
        "username": "system:serviceaccount:dev:builder",
        "groups": ["system:serviceaccounts", "system:serviceaccounts:dev", "system:authenticated"],
    }


# -- SubjectAccessReview / LocalSubjectAccessReview ----------------------------------------------

SAR = """\
apiVersion: authorization.k8s.io/v1
kind: {kind}
metadata: {{namespace: {ns}}}
spec:
  user: alice
  resourceAttributes: {{verb: list, resource: pods, namespace: {asked}}}
"""


def test_subject_access_review_answers_for_the_subject(kubectl):
    manifest = SAR.format(kind="SubjectAccessReview", ns="default", asked="dev")
    review = json.loads(kubectl("create", "-f", "-", "-o", "json", input=manifest).stdout)
    assert review["status"]["allowed"] is True
    assert "alice-view" in review["status"]["reason"]
    manifest = SAR.format(kind="SubjectAccessReview", ns="default", asked="other")
    review = json.loads(kubectl("create", "-f", "-", "-o", "json", input=manifest).stdout)
    assert review["status"] == {"allowed": False}


def test_subject_access_review_needs_permission(kubectl):
    manifest = SAR.format(kind="SubjectAccessReview", ns="default", asked="dev")
    result = kubectl("--token", VIEW_TOKEN, "create", "-f", "-", input=manifest, check=False)
    assert (
        'subjectaccessreviews.authorization.k8s.io is forbidden: User "alice" cannot create '
        'resource "subjectaccessreviews" in API group "authorization.k8s.io" at the cluster scope'
    ) in result.stderr


def test_local_subject_access_review_stays_in_its_namespace(kubectl):
    ok = SAR.format(kind="LocalSubjectAccessReview", ns="dev", asked="dev")
    review = json.loads(kubectl("create", "-f", "-", "-o", "json", input=ok).stdout)
    assert review["status"]["allowed"] is True
    wrong = SAR.format(kind="LocalSubjectAccessReview", ns="dev", asked="other")
    result = kubectl("create", "-f", "-", input=wrong, check=False)
    assert "spec.resourceAttributes.namespace must match namespace" in result.stderr


# -- units -------------------------------------------------------------------------------------


def test_bootstrap_policy_ships_with_the_package():
    objects = bootstrap_objects()
    assert DATA.as_posix().endswith("clustercord_sandbox/data")  # packaged, not /work/shared
    names = {o["metadata"]["name"] for o in objects if o["kind"] == "ClusterRole"}
    assert {"cluster-admin", "admin", "edit", "view", "system:basic-user"} <= names
    basic = next(o for o in objects if o["metadata"]["name"] == "system:basic-user")
    assert "selfsubjectreviews" in basic["rules"][0]["resources"]
    assert {o["kind"] for o in objects} == {
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
    }


def test_snapshot_is_rebuilt_only_when_rbac_objects_change(sandbox, server):
    first = server.rbac.snapshot
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "dev"}}
    role = {
        "apiVersion": f"{RBAC}/v1",
        "kind": "Role",
        "metadata": {"name": "r", "namespace": "dev"},
    }

    async def create(obj: dict[str, Any]) -> None:
        fixtures.load(server.api, [obj])

    sandbox.call(create(cm))
    assert server.rbac.snapshot is first
    sandbox.call(create(role))
    assert server.rbac.snapshot is not first


def _field(number: int, payload: bytes) -> bytes:
    return bytes([number << 3 | 2, len(payload)]) + payload


def test_protobuf_review_decoding():
    attrs = _field(2, b"list") + _field(5, b"pods") + _field(1, b"dev")
    raw = _field(2, _field(1, attrs))  # spec.resourceAttributes
    type_meta = _field(1, b"authorization.k8s.io/v1") + _field(2, b"SelfSubjectAccessReview")
    body = protowire.MAGIC + _field(1, type_meta) + _field(2, raw)
    assert protowire.decode(body)["spec"] == {
        "resourceAttributes": {"verb": "list", "resource": "pods", "namespace": "dev"}
    }


# -- property: the sandbox answers what the SDK answers ------------------------------------------


class Api:
    """A minimal HTTPS client for the sandbox, as any bearer-token client would talk to it."""

    def __init__(self, server: SandboxServer) -> None:
        assert server.certificate is not None
        self.url = server.url
        self.context = ssl.create_default_context(cadata=server.certificate.ca_pem.decode())

    def call(self, method: str, path: str, token: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {token}")
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, context=self.context) as response:
            return json.loads(response.read())


VERBS = st.sampled_from(["get", "list", "create", "delete", "*"])
RESOURCES = st.sampled_from(["pods", "secrets", "pods/log", "deployments", "*"])
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
ASKS = st.lists(
    st.tuples(
        st.sampled_from(["get", "list", "create", "delete", "watch"]),
        st.sampled_from(["pods", "secrets", "deployments"]),
        st.sampled_from(["", "log"]),
        GROUPS.filter(lambda g: g != "*"),
        st.sampled_from(["", "a", "c"]),
        st.booleans(),
    ),
    min_size=1,
    max_size=6,
)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    role_rules=RULES,
    cluster_rules=RULES,
    bind_cluster_role_locally=st.booleans(),
    asks=ASKS,
)
def test_self_subject_access_review_equals_the_sdk(
    server, role_rules, cluster_rules, bind_cluster_role_locally, asks
):
    api = Api(server)
    admin = server.admin_token
    unique = uuid.uuid4().hex[:8]  # per example: the fixture's `unique` is per test
    ns, user, token = f"p{unique}", f"u-{unique}", f"tok-{unique}"
    server.add_token(token, UserInfo.authenticated(user))
    base = f"/apis/{RBAC}/v1"
    api.call("POST", "/api/v1/namespaces", admin, {"metadata": {"name": ns}})
    role = {"metadata": {"name": "r", "namespace": ns}, "rules": role_rules}
    api.call("POST", f"{base}/namespaces/{ns}/roles", admin, role)
    cluster_role = {"metadata": {"name": f"cr-{unique}"}, "rules": cluster_rules}
    api.call("POST", f"{base}/clusterroles", admin, cluster_role)
    subject = [{"apiGroup": RBAC, "kind": "User", "name": user}]
    role_ref = {"apiGroup": RBAC, "kind": "Role", "name": "r"}
    binding = {"metadata": {"name": "b", "namespace": ns}, "roleRef": role_ref, "subjects": subject}
    api.call("POST", f"{base}/namespaces/{ns}/rolebindings", admin, binding)
    cluster_ref = {"apiGroup": RBAC, "kind": "ClusterRole", "name": f"cr-{unique}"}
    if bind_cluster_role_locally:
        local = {"metadata": {"name": "c", "namespace": ns}, "roleRef": cluster_ref}
        api.call(
            "POST", f"{base}/namespaces/{ns}/rolebindings", admin, {**local, "subjects": subject}
        )
    else:
        crb = {"metadata": {"name": f"crb-{unique}"}, "roleRef": cluster_ref, "subjects": subject}
        api.call("POST", f"{base}/clusterrolebindings", admin, crb)

    snapshot = RBACSnapshot.from_objects(
        [
            *api.call("GET", f"{base}/roles", admin)["items"],
            *api.call("GET", f"{base}/clusterroles", admin)["items"],
            *api.call("GET", f"{base}/rolebindings", admin)["items"],
            *api.call("GET", f"{base}/clusterrolebindings", admin)["items"],
        ]
    )
    for verb, resource, sub, group, name, namespaced in asks:
        attributes = {"verb": verb, "resource": resource, "group": group}
        attributes |= {"subresource": sub, "name": name, "namespace": ns if namespaced else ""}
        review = {"spec": {"resourceAttributes": attributes}}
        path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
        answer = api.call("POST", path, token, review)["status"]["allowed"]
        expected = snapshot.authorize(
            UserInfo.authenticated(user),
            Attributes(verb, resource, group, sub, name, attributes["namespace"]),
        )
        assert answer is expected.allowed, (attributes, expected.reason)
