"""ServiceAccount tokens with the real kubectl: `kubectl create token` (a protobuf TokenRequest),
the token used as kubectl's credentials, its revocation, and TokenReview."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import jwt
import pytest

from clustercord_sandbox import protowire
from clustercord_sandbox.server import SandboxServer
from clustercord_sandbox.tokens import ISSUER

UNAUTHORIZED = "You must be logged in to the server (Unauthorized)"


@pytest.fixture
def account(kubectl, unique: str) -> Iterator[str]:
    """A ServiceAccount in `default` (kubectl's `create sa` speaks protobuf: apply instead)."""
    kubectl("apply", "-f", "-", input=_service_account(unique))
    yield unique
    kubectl("delete", "sa", unique, "--ignore-not-found")


def _service_account(name: str) -> str:
    return f"apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: {name}}}\n"


def _claims(server: SandboxServer, token: str, audience: str = ISSUER) -> dict:
    """The token's claims, verified with the sandbox's public key by PyJWT as a relying party."""
    return jwt.decode(
        token, server.tokens.public_key(), algorithms=["ES256"], audience=audience, issuer=ISSUER
    )


def _uid(kubectl, *object_args: str) -> str:
    return kubectl("get", *object_args, "-o", "jsonpath={.metadata.uid}").stdout


def _whoami(kubectl, token: str):
    return kubectl("--token", token, "auth", "whoami", "-o", "json", check=False)


def test_kubectl_create_token_authenticates_as_the_service_account(kubectl, server, account):
    token = kubectl("create", "token", account).stdout.strip()

    claims = _claims(server, token)
    assert claims["sub"] == f"system:serviceaccount:default:{account}"
    assert claims["aud"] == [ISSUER]
    assert claims["exp"] - claims["iat"] == 3600  # the server's default duration
    assert claims["nbf"] == claims["iat"] <= time.time()
    assert claims["kubernetes.io"] == {
        "namespace": "default",
        "serviceaccount": {"name": account, "uid": _uid(kubectl, "sa", account)},
    }

    me = json.loads(_whoami(kubectl, token).stdout)["status"]["userInfo"]
    assert me["username"] == f"system:serviceaccount:default:{account}"
    assert me["uid"] == _uid(kubectl, "sa", account)
    assert me["groups"] == [
        "system:serviceaccounts",
        "system:serviceaccounts:default",
        "system:authenticated",
    ]
    assert me["extra"]["authentication.kubernetes.io/credential-id"] == [f"JTI={claims['jti']}"]
    # Authenticated, but a ServiceAccount has no rights until RBAC grants them.
    denied = kubectl("--token", token, "get", "pods", check=False)
    assert denied.returncode == 1
    assert f'User "system:serviceaccount:default:{account}" cannot list resource "pods"' in (
        denied.stderr
    )


def test_tokens_verify_with_the_published_keys(kubectl, account):
    """A relying party verifies a token offline from issuer discovery and the JWKS."""
    discovery = json.loads(kubectl("get", "--raw", "/.well-known/openid-configuration").stdout)
    assert discovery["issuer"] == ISSUER and discovery["jwks_uri"].endswith("/openid/v1/jwks")
    keys = jwt.PyJWKSet.from_json(kubectl("get", "--raw", "/openid/v1/jwks").stdout)
    token = kubectl("create", "token", account).stdout.strip()
    key = keys[jwt.get_unverified_header(token)["kid"]]
    claims = jwt.decode(token, key, algorithms=["ES256"], audience=ISSUER, issuer=ISSUER)
    assert claims["sub"] == f"system:serviceaccount:default:{account}"
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(tampered, key, algorithms=["ES256"], audience=ISSUER, issuer=ISSUER)
    assert UNAUTHORIZED in _whoami(kubectl, tampered).stderr


def test_audience_and_duration(kubectl, server, account):
    token = kubectl(
        "create", "token", account, "--audience", "vault", "--duration", "20m"
    ).stdout.strip()
    claims = _claims(server, token, audience="vault")
    assert claims["aud"] == ["vault"]
    assert claims["exp"] - claims["iat"] == 1200
    # A token for another audience is no credential for the API server.
    assert UNAUTHORIZED in _whoami(kubectl, token).stderr


def test_durations_shorter_than_ten_minutes_are_refused(kubectl, account):
    refused = kubectl("create", "token", account, "--duration", "5m", check=False)
    assert refused.returncode == 1
    assert (
        "spec.expirationSeconds: Invalid value: 300: may not specify a duration less than "
        "10 minutes" in refused.stderr
    )


def test_token_bound_to_a_pod_dies_with_the_pod(kubectl, server, account, unique):
    pod = f"{unique}-pod"
    kubectl("run", pod, "--image", "nginx:1.27")
    token = kubectl(
        "create", "token", account, "--bound-object-kind", "Pod", "--bound-object-name", pod
    ).stdout.strip()
    pod_uid = _uid(kubectl, "pod", pod)
    assert _claims(server, token)["kubernetes.io"]["pod"] == {"name": pod, "uid": pod_uid}
    extra = json.loads(_whoami(kubectl, token).stdout)["status"]["userInfo"]["extra"]
    assert extra["authentication.kubernetes.io/pod-name"] == [pod]
    assert extra["authentication.kubernetes.io/pod-uid"] == [pod_uid]

    kubectl("delete", "pod", pod, "--wait=false")
    assert UNAUTHORIZED in _whoami(kubectl, token).stderr
    # Recreating the pod does not revive the token: the uid differs.
    kubectl("run", pod, "--image", "nginx:1.27")
    assert UNAUTHORIZED in _whoami(kubectl, token).stderr
    kubectl("delete", "pod", pod, "--wait=false")


def test_bound_object_must_exist_with_the_given_uid(kubectl, account, unique, tmp_path):
    missing = kubectl(
        "create",
        "token",
        account,
        "--bound-object-kind",
        "Secret",
        "--bound-object-name",
        "nope",
        check=False,
    )
    assert missing.returncode == 1 and 'secrets "nope" not found' in missing.stderr

    kubectl(
        "apply", "-f", "-", input=f"apiVersion: v1\nkind: Secret\nmetadata: {{name: {unique}}}\n"
    )
    token = kubectl(
        "create", "token", account, "--bound-object-kind", "Secret", "--bound-object-name", unique
    ).stdout.strip()
    assert _whoami(kubectl, token).returncode == 0
    path = f"/api/v1/namespaces/default/serviceaccounts/{account}/token"
    for ref, expected in (
        ({"kind": "Secret", "apiVersion": "v1", "name": unique, "uid": "0000"}, "does not match"),
        ({"kind": "Deployment", "name": unique}, 'to object of kind "Deployment"'),
    ):
        body = tmp_path / "request.json"
        body.write_text(json.dumps({"spec": {"boundObjectRef": ref}}))
        refused = kubectl("create", "--raw", path, "-f", str(body), check=False)
        assert refused.returncode == 1 and expected in refused.stderr
    kubectl("delete", "secret", unique)
    assert UNAUTHORIZED in _whoami(kubectl, token).stderr


def test_deleting_or_recreating_the_service_account_revokes_its_tokens(kubectl, account):
    token = kubectl("create", "token", account).stdout.strip()
    assert _whoami(kubectl, token).returncode == 0
    kubectl("delete", "sa", account)
    assert UNAUTHORIZED in _whoami(kubectl, token).stderr
    kubectl("apply", "-f", "-", input=_service_account(account))  # same name, new uid
    assert UNAUTHORIZED in _whoami(kubectl, token).stderr


def test_expired_tokens_are_refused(kubectl, server, account):
    token = kubectl("create", "token", account, "--duration", "10m").stdout.strip()
    assert _whoami(kubectl, token).returncode == 0
    server.tokens.clock = lambda: time.time() + 600
    try:
        assert UNAUTHORIZED in _whoami(kubectl, token).stderr
    finally:
        server.tokens.clock = time.time


def _token_review(kubectl, token: str, audiences: list[str] | None = None) -> dict:
    spec: dict = {"token": token}
    if audiences is not None:
        spec["audiences"] = audiences
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec}
    created = kubectl("create", "-f", "-", "-o", "json", input=json.dumps(review))
    return json.loads(created.stdout)["status"]


def test_token_review(kubectl, server, account):
    token = kubectl("create", "token", account, "--audience", "vault").stdout.strip()
    status = _token_review(kubectl, token, ["vault", "other"])
    assert status["authenticated"] is True
    assert status["audiences"] == ["vault"]
    assert status["user"]["username"] == f"system:serviceaccount:default:{account}"
    assert "system:serviceaccounts:default" in status["user"]["groups"]

    wrong_audience = _token_review(kubectl, token)
    assert (
        "authenticated" not in wrong_audience
        and "is invalid for the target audiences" in (wrong_audience["error"])
    )
    # The static (kubeconfig) token: valid for the API server's own audience only.
    admin = _token_review(kubectl, server.admin_token)
    assert admin["user"]["username"] == "sandbox-admin" and admin["audiences"] == [ISSUER]
    assert "authenticated" not in _token_review(kubectl, server.admin_token, ["vault"])
    garbage = _token_review(kubectl, "not-a-token")
    assert garbage == {"user": {}, "error": "[invalid bearer token, token lookup failed]"}

    kubectl("delete", "sa", account)
    revoked = _token_review(kubectl, token, ["vault"])
    assert revoked["error"] == f'[serviceaccounts "{account}" not found]'


def test_tokenreview_is_discoverable(kubectl):
    resources = kubectl("api-resources", "--api-group", "authentication.k8s.io").stdout
    assert "tokenreviews" in resources


def test_protobuf_token_request_fields():
    """Field numbers of generated.proto: audiences=1, boundObjectRef=3, expirationSeconds=4
    (an int64 varint); a string where a varint belongs is refused, not misread."""

    def field(number: int, payload: bytes) -> bytes:
        return bytes([number << 3 | 2, len(payload)]) + payload

    ref = field(1, b"Pod") + field(3, b"web")
    spec = field(1, b"a") + field(1, b"b") + field(3, ref) + bytes([4 << 3, 0x90, 0x1C])
    raw = field(2, spec)
    type_meta = field(1, b"authentication.k8s.io/v1") + field(2, b"TokenRequest")
    envelope = protowire.MAGIC + field(1, type_meta) + field(2, raw)
    assert protowire.decode(envelope) == {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "audiences": ["a", "b"],
            "boundObjectRef": {"kind": "Pod", "name": "web"},
            "expirationSeconds": 3600,
        },
    }
    bad = protowire.MAGIC + field(1, type_meta) + field(2, field(2, field(4, b"x")))
    with pytest.raises(protowire.ProtobufError, match="expirationSeconds"):
        protowire.decode(bad)
