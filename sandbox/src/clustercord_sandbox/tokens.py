"""ServiceAccount tokens: `serviceaccounts/token` (TokenRequest), their validation, TokenReview.

Tokens are JWTs signed ES256 with a key made for this sandbox (on first use: most sandboxes never
issue one), carrying the claims a real API server puts in them: `iss`, `sub`
(`system:serviceaccount:NS:NAME`), `aud`, `exp`/`iat`/`nbf`, `jti` and the `kubernetes.io`
claim naming the namespace, the ServiceAccount and the bound Pod or Secret with their uids.

A token is checked on every use, as the API server does: signature, time, audience, and that its
ServiceAccount and bound object still exist with the uids it names. So deleting (or recreating)
either revokes the token at once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from clustercord_sdk.rbac import UserInfo

from . import errors
from .errors import ApiError
from .registry import ResourceType
from .resource_request import ResourceRequest
from .store import SandboxStore

# What kubeadm clusters use for `--service-account-issuer` and, by default, `--api-audiences`.
ISSUER = "https://kubernetes.default.svc.cluster.local"
DEFAULT_EXPIRATION_SECONDS = 3600  # SetDefaults_TokenRequestSpec
MIN_EXPIRATION_SECONDS = 600  # ValidateTokenRequest: "less than 10 minutes"
MAX_EXPIRATION_SECONDS = 1 << 32
ALGORITHM = "ES256"
# Objects a token may be bound to: kind → (plural, namespaced), all in the core group.
BOUND_KINDS = {"Pod": ("pods", True), "Secret": ("secrets", True), "Node": ("nodes", False)}
EXTRA_PREFIX = "authentication.kubernetes.io/"


class TokenInvalid(Exception):
    """A token this sandbox issued that no longer authenticates, with the reason why."""


@dataclass(frozen=True)
class Verified:
    user: UserInfo
    audiences: tuple[str, ...]


class ServiceAccountTokens:
    """Issues and checks the ServiceAccount tokens of one sandbox.

    `min_expiration_seconds` is Kubernetes' 600 unless the server is told otherwise: tests of
    token refresh need tokens that expire within a test's run. `clock` (seconds since the epoch)
    is injectable for the same reason: expiry is tested by moving time, not by sleeping.
    """

    def __init__(
        self,
        store: SandboxStore,
        read_body: Callable[[web.Request], Awaitable[Any]],
        *,
        min_expiration_seconds: int = MIN_EXPIRATION_SECONDS,
        audiences: Sequence[str] = (ISSUER,),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        # The server's reader of review bodies: kubectl sends TokenRequests as protobuf.
        self.read_body = read_body
        self.min_expiration_seconds = min_expiration_seconds
        self.audiences = tuple(audiences)
        self.clock = clock
        self._key: ec.EllipticCurvePrivateKey | None = None

    @property
    def key(self) -> ec.EllipticCurvePrivateKey:
        if self._key is None:
            self._key = ec.generate_private_key(ec.SECP256R1())
        return self._key

    def public_key(self) -> ec.EllipticCurvePublicKey:
        """The key that verifies this sandbox's tokens (the JWKS of a real issuer)."""
        return self.key.public_key()

    def jwks(self) -> dict[str, Any]:
        """`/openid/v1/jwks`: the public key, for relying parties that verify tokens offline."""
        key = ECAlgorithm.to_jwk(self.public_key(), as_dict=True)
        return {"keys": [{**key, "use": "sig", "kid": self.key_id, "alg": ALGORITHM}]}

    def openid_configuration(self) -> dict[str, Any]:
        """`/.well-known/openid-configuration`, as ServiceAccount issuer discovery serves it."""
        return {
            "issuer": ISSUER,
            "jwks_uri": f"{ISSUER}/openid/v1/jwks",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [ALGORITHM],
        }

    # -- TokenRequest ----------------------------------------------------------------------
    async def handle(
        self, request: web.Request, req: ResourceRequest, user: UserInfo
    ) -> web.StreamResponse:
        """The `serviceaccounts/token` subresource handler (`kubectl create token`)."""
        if request.method != "POST":
            raise errors.method_not_supported(f"{request.method} is not supported on token")
        answer = self.request(req.namespace, req.name, await self.read_body(request))
        return web.json_response(answer, status=201)

    def request(self, namespace: str, name: str, body: Any) -> dict[str, Any]:
        """Answers `POST .../serviceaccounts/NAME/token`: the TokenRequest, status filled in."""
        if not isinstance(body, dict):
            raise errors.bad_request("the request body must be a TokenRequest object")
        account = self.store.get("", "serviceaccounts", namespace, name)
        if account is None:
            raise _not_found("serviceaccounts", name)
        spec = dict(body.get("spec") or {})
        audiences = [str(a) for a in spec.get("audiences") or ()] or list(self.audiences)
        seconds = self._expiration(spec.get("expirationSeconds"))
        bound = self._bound_object(namespace, name, spec.get("boundObjectRef"))
        now = int(self.clock())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "sub": f"system:serviceaccount:{namespace}:{name}",
            "aud": audiences,
            "exp": now + seconds,
            "iat": now,
            "nbf": now,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": {
                "namespace": namespace,
                "serviceaccount": {"name": name, "uid": account["metadata"]["uid"]},
                **bound,
            },
        }
        token = jwt.encode(claims, self.key, algorithm=ALGORITHM, headers={"kid": self.key_id})
        spec.update(audiences=audiences, expirationSeconds=seconds)
        return {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "creationTimestamp": _timestamp(now),
            },
            "spec": spec,
            "status": {"token": token, "expirationTimestamp": _timestamp(now + seconds)},
        }

    @property
    def key_id(self) -> str:
        """A stable id of the signing key, as a real issuer's `kid` header."""
        numbers = self.public_key().public_numbers()
        return uuid.uuid5(uuid.NAMESPACE_URL, f"{numbers.x:x}.{numbers.y:x}").hex

    def _expiration(self, value: Any) -> int:
        if value in (None, 0, "0", ""):
            return DEFAULT_EXPIRATION_SECONDS
        try:
            seconds = int(value)
        except (TypeError, ValueError):
            raise _invalid("spec.expirationSeconds", value, "must be an integer") from None
        if seconds < self.min_expiration_seconds:
            minutes = self.min_expiration_seconds / 60
            limit = f"{minutes:g} minutes" if minutes >= 1 else f"{self.min_expiration_seconds}s"
            raise _invalid(
                "spec.expirationSeconds", seconds, f"may not specify a duration less than {limit}"
            )
        if seconds > MAX_EXPIRATION_SECONDS:
            raise _invalid(
                "spec.expirationSeconds",
                seconds,
                "may not specify a duration larger than 2^32 seconds",
            )
        return seconds

    def _bound_object(self, namespace: str, account: str, ref: Any) -> dict[str, Any]:
        """The `kubernetes.io` claim entry naming the bound object, checked like the server."""
        if not ref:
            return {}
        if not isinstance(ref, dict):
            raise errors.bad_request("spec.boundObjectRef must be an object")
        kind = str(ref.get("kind") or "")
        if kind not in BOUND_KINDS:
            raise errors.bad_request(
                f'cannot bind token for serviceaccount "{account}" to object of kind "{kind}"'
            )
        if ref.get("apiVersion") not in (None, "", "v1"):
            raise errors.bad_request(
                f'cannot bind token for serviceaccount "{account}" to object of apiVersion '
                f'"{ref.get("apiVersion")}"'
            )
        plural, namespaced = BOUND_KINDS[kind]
        name = str(ref.get("name") or "")
        if not name:
            raise _invalid("spec.boundObjectRef.name", name, "Required value")
        obj = self.store.get("", plural, namespace if namespaced else "", name)
        if obj is None:
            raise _not_found(plural, name)
        uid = obj["metadata"]["uid"]
        if ref.get("uid") and ref["uid"] != uid:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {plural} "{name}": the UID in the bound '
                f"object reference ({ref['uid']}) does not match the UID in record. The object "
                "might have been deleted and then recreated",
                {"name": name, "kind": plural},
            )
        return {kind.lower(): {"name": name, "uid": uid}}

    # -- checking tokens -------------------------------------------------------------------
    def verify(self, token: str, audiences: Sequence[str] = ()) -> Verified:
        """The user of one of this sandbox's tokens, valid for one of `audiences` (the API
        server's when empty); `TokenInvalid` says why not. Non-JWTs raise `TokenInvalid` too."""
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != ALGORITHM:
                raise TokenInvalid("not a token of this issuer")
            claims = jwt.decode(
                token,
                self.public_key(),
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                # Time and audience are checked below: with the sandbox's clock, and with the
                # API server's wording.
                options={
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                },
            )
        except jwt.InvalidTokenError as exc:
            raise TokenInvalid(f"invalid bearer token: {exc}") from None
        now = self.clock()
        if now >= float(claims.get("exp", 0)):
            raise TokenInvalid("service account token has expired")
        if now < float(claims.get("nbf", 0)):
            raise TokenInvalid("service account token is not valid yet")
        aud = claims.get("aud") or []
        token_audiences = [aud] if isinstance(aud, str) else list(aud)
        wanted = list(audiences) or list(self.audiences)
        matched = tuple(a for a in wanted if a in token_audiences)
        if not matched:
            raise TokenInvalid(
                f"token audiences {token_audiences!r} is invalid for the target audiences "
                f"{wanted!r}"
            )
        return Verified(self._user(claims), matched)

    def _user(self, claims: Mapping[str, Any]) -> UserInfo:
        private = claims.get("kubernetes.io") or {}
        namespace = str(private.get("namespace") or "")
        account = private.get("serviceaccount") or {}
        name, uid = str(account.get("name") or ""), str(account.get("uid") or "")
        current = self.store.get("", "serviceaccounts", namespace, name)
        if current is None:
            raise TokenInvalid(f'serviceaccounts "{name}" not found')
        if current["metadata"]["uid"] != uid:
            raise TokenInvalid(
                f"service account UID ({uid}) does not match claim ({current['metadata']['uid']})"
            )
        extra: dict[str, tuple[str, ...]] = {
            f"{EXTRA_PREFIX}credential-id": (f"JTI={claims.get('jti', '')}",)
        }
        for kind, (plural, namespaced) in BOUND_KINDS.items():
            ref = private.get(kind.lower())
            if not ref:
                continue
            obj = self.store.get("", plural, namespace if namespaced else "", ref.get("name", ""))
            if obj is None or obj["metadata"]["uid"] != ref.get("uid"):
                raise TokenInvalid(
                    f"{kind.lower()} {ref.get('name')!r} bound to the token no longer exists"
                )
            if kind in ("Pod", "Node"):
                extra[f"{EXTRA_PREFIX}{kind.lower()}-name"] = (str(ref.get("name")),)
                extra[f"{EXTRA_PREFIX}{kind.lower()}-uid"] = (str(ref.get("uid")),)
        user = UserInfo.service_account(namespace, name)
        return replace(user, uid=uid, extra=extra)

    def authenticate(self, token: str) -> UserInfo | None:
        """The `TokenAuthenticator` validator: the token's user for a request, else `None`."""
        try:
            return self.verify(token).user
        except TokenInvalid:
            return None

    # -- TokenReview -----------------------------------------------------------------------
    def review(
        self, spec: Mapping[str, Any], audience_agnostic: Callable[[str], UserInfo | None]
    ) -> Verified | str:
        """A TokenReview's answer: who the token is and for which audiences, or why it is not
        valid. Tokens this sandbox signed are checked against the review's audiences; any
        other token goes to `audience_agnostic` (the static tokens) which, as behind the API
        server's audience wrapper, answers only when the review asks for the server's own."""
        token = str(spec.get("token") or "")
        if not token:
            raise _invalid("spec.token", "", "Required value")
        wanted = [str(a) for a in spec.get("audiences") or ()]
        try:
            return self.verify(token, wanted)
        except TokenInvalid as exc:
            if _issued_by_us(token):
                return f"[{exc}]"
        matched = tuple(a for a in wanted or self.audiences if a in self.audiences)
        if not matched:
            return "[invalid bearer token, token audiences is invalid for the target audiences]"
        user = audience_agnostic(token)
        if user is None:
            return "[invalid bearer token, token lookup failed]"
        return Verified(user, matched)


def _issued_by_us(token: str) -> bool:
    try:
        return jwt.decode(token, options={"verify_signature": False}).get("iss") == ISSUER
    except jwt.InvalidTokenError:
        return False


def _timestamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _not_found(plural: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{plural} "{name}" not found', {"name": name, "kind": plural})


def _invalid(field: str, value: Any, message: str) -> ApiError:
    shown = f"{value}" if not isinstance(value, str) else f'"{value}"'
    return ApiError(
        422,
        "Invalid",
        f'TokenRequest.authentication.k8s.io "" is invalid: {field}: Invalid value: {shown}: '
        f"{message}",
        {
            "kind": "TokenRequest",
            "group": "authentication.k8s.io",
            "causes": [{"reason": "FieldValueInvalid", "message": message, "field": field}],
        },
    )


# The TokenReview resource (POST only, answered by `AccessReviews`, never stored).
TOKEN_REVIEW = ResourceType(
    "authentication.k8s.io",
    "v1",
    "TokenReview",
    "tokenreviews",
    False,
    verbs=("create",),
    definition="io.k8s.api.authentication.v1.TokenReview",
)
