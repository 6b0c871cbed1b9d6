"""Who is asking and may they: the sandbox's authentication, impersonation and RBAC.

Authentication is by bearer token only (a table the server holds, plus pluggable validators
for issued tokens); anything else is 401, as the issue asks. Authorization is the SDK's RBAC
library over the Roles and bindings in the sandbox store, so the sandbox and every ClusterCord
RBAC answer share one implementation. The access reviews (SelfSubjectAccessReview & co.) are
answered here too, since they are nothing but questions put to the same authorizer.

Error bodies copy the API server's wording (`responsewriters.forbiddenMessage`), because
kubectl prints them verbatim and users read them.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml

from clustercord_sdk.rbac import (
    ALL_AUTHENTICATED,
    ALL_SERVICE_ACCOUNTS,
    ALL_UNAUTHENTICATED,
    ANONYMOUS_USER,
    Attributes,
    Decision,
    RBACSnapshot,
    UserInfo,
    parse_service_account_username,
)

from . import errors
from .errors import ApiError
from .store import SandboxStore

RBAC_GROUP = "rbac.authorization.k8s.io"
RBAC_PLURALS = frozenset({"roles", "clusterroles", "rolebindings", "clusterrolebindings"})
AUTHORIZATION_GROUP = "authorization.k8s.io"
AUTHENTICATION_GROUP = "authentication.k8s.io"
DATA = Path(__file__).parent / "data"
# Kubernetes' bootstrap policy files, packaged next to this module (fixtures load them too).
BOOTSTRAP_FILES = (
    "cluster-roles.yaml",
    "cluster-role-bindings.yaml",
    "namespace-roles.yaml",
    "namespace-role-bindings.yaml",
)
# Kubernetes >= 1.28 lets everyone ask who they are; the packaged (v1.19) policy predates it.
SELF_SUBJECT_REVIEW_RULE = {
    "apiGroups": [AUTHENTICATION_GROUP],
    "resources": ["selfsubjectreviews"],
    "verbs": ["create"],
}

TokenValidator = Callable[[str], UserInfo | None]
Decider = Callable[[UserInfo, Attributes], Decision]


# -- bootstrap policy ------------------------------------------------------------------------


@cache
def _bootstrap_text(name: str) -> str:
    return (DATA / name).read_text()


def bootstrap_objects() -> list[dict[str, Any]]:
    """Kubernetes' default ClusterRoles, bindings and kube-system/kube-public Roles, as a
    1.32 API server creates them (`system:basic-user` may create SelfSubjectReviews).

    Without them nobody but `system:masters` may do anything, not even discovery or
    `kubectl auth can-i` (granted by `system:discovery` / `system:basic-user`); fixtures add
    them so the sandbox starts like a real cluster. A fresh list each call: callers mutate.
    """
    return copy.deepcopy(_parsed_bootstrap())


@cache
def _parsed_bootstrap() -> list[dict[str, Any]]:
    # Parsed once per process (libyaml when present): every sandbox start needs it.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    objects: list[dict[str, Any]] = []
    for name in BOOTSTRAP_FILES:
        for doc in yaml.load_all(_bootstrap_text(name), Loader=loader):
            if doc is None:
                continue
            items = doc["items"] if doc.get("kind") == "List" else [doc]
            objects.extend(_modernized(item) for item in items)
    return objects


def _modernized(obj: dict[str, Any]) -> dict[str, Any]:
    """Drops the testdata's `creationTimestamp: null` (the store stamps its own) and adds the
    SelfSubjectReview rule newer API servers give `system:basic-user`."""
    (obj.get("metadata") or {}).pop("creationTimestamp", None)
    if obj.get("kind") == "ClusterRole" and obj["metadata"].get("name") == "system:basic-user":
        rules = obj.get("rules") or []
        if SELF_SUBJECT_REVIEW_RULE not in rules:
            obj["rules"] = [SELF_SUBJECT_REVIEW_RULE, *rules]
    return obj


# -- authentication --------------------------------------------------------------------------


class TokenAuthenticator:
    """Bearer tokens → users: a table of static tokens, then any registered validators.

    Tokens are keyed by their SHA-256 so a lookup's timing says nothing about the tokens held.
    Validators (e.g. for signed ServiceAccount tokens) return `None` for tokens they don't know.
    """

    def __init__(self) -> None:
        self._tokens: dict[bytes, UserInfo] = {}
        self.validators: list[TokenValidator] = []

    def add(self, token: str, user: UserInfo) -> None:
        self._tokens[_digest(token)] = user

    def remove(self, token: str) -> None:
        self._tokens.pop(_digest(token), None)

    def user_for(self, token: str) -> UserInfo | None:
        user = self._tokens.get(_digest(token))
        if user is not None:
            return user
        return next((u for v in self.validators if (u := v(token)) is not None), None)

    def authenticate(self, headers: Mapping[str, str]) -> UserInfo:
        """The user of a request's `Authorization: Bearer` header, or 401 Unauthorized."""
        scheme, _, token = headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise errors.unauthorized()
        user = self.user_for(token)
        if user is None:
            raise errors.unauthorized()
        return user


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


# -- authorization ---------------------------------------------------------------------------


class RBACAuthorizer:
    """The RBAC authorizer over the store's RBAC objects, rebuilt only when they change.

    It subscribes to the store's change feed and drains it (without awaiting) before each
    decision: a RoleBinding created by the previous request is in force for the next one, and
    requests that change no RBAC object never pay for a rebuild.
    """

    def __init__(self, store: SandboxStore) -> None:
        self._store = store
        self._changes: asyncio.Queue[Any] = store.subscribe()
        self._snapshot: RBACSnapshot | None = None

    def close(self) -> None:
        self._store.unsubscribe(self._changes)

    @property
    def snapshot(self) -> RBACSnapshot:
        if self._rbac_changed() or self._snapshot is None:
            self._snapshot = self._build()
        return self._snapshot

    def _rbac_changed(self) -> bool:
        changed = False
        while not self._changes.empty():
            event = self._changes.get_nowait()
            changed = changed or (event.group == RBAC_GROUP and event.plural in RBAC_PLURALS)
        return changed

    def _build(self) -> RBACSnapshot:
        def objects(plural: str) -> list[dict[str, Any]]:
            return self._store.list(RBAC_GROUP, plural)

        return RBACSnapshot.from_objects(
            objects("roles"),
            objects("clusterroles"),
            objects("rolebindings"),
            objects("clusterrolebindings"),
        )

    def decide(self, user: UserInfo, attributes: Attributes) -> Decision:
        return self.snapshot.authorize(user, attributes)

    def __call__(self, user: UserInfo, attributes: Attributes) -> bool:
        return self.decide(user, attributes).allowed


def forbidden(user: UserInfo, attributes: Attributes, decision: Decision | None = None) -> ApiError:
    """403 exactly as `responsewriters.Forbidden` words it (the RBAC errors appended)."""
    reason = f"RBAC: {'; '.join(decision.errors)}" if decision and decision.errors else ""
    if not attributes.is_resource_request:
        text = f"User {user.name!r} cannot {attributes.verb} path {attributes.path!r}"
        text = text.replace("'", '"')
        return ApiError(403, "Forbidden", f"forbidden: {_with_reason(text, reason)}", {})
    scope = (
        f' in the namespace "{attributes.namespace}"'
        if attributes.namespace
        else " at the cluster scope"
    )
    text = (
        f'User "{user.name}" cannot {attributes.verb} resource "{attributes.combined_resource}"'
        f' in API group "{attributes.api_group}"{scope}'
    )
    group = attributes.api_group
    resource = f"{attributes.resource}.{group}" if group else attributes.resource
    target = f'{resource} "{attributes.name}"' if attributes.name else resource
    details: dict[str, Any] = {"kind": attributes.resource}
    if group:
        details["group"] = group
    if attributes.name:
        details["name"] = attributes.name
    return ApiError(
        403, "Forbidden", f"{target} is forbidden: {_with_reason(text, reason)}", details
    )


def _with_reason(text: str, reason: str) -> str:
    return f"{text}: {reason}" if reason else text


# -- impersonation ---------------------------------------------------------------------------

IMPERSONATE_USER = "Impersonate-User"
IMPERSONATE_GROUP = "Impersonate-Group"
IMPERSONATE_UID = "Impersonate-Uid"
IMPERSONATE_EXTRA = "impersonate-extra-"


def impersonate(requester: UserInfo, headers: Any, decide: Decider) -> UserInfo:
    """The user a request acts as: `requester`, or whom its `Impersonate-*` headers name.

    Each impersonated attribute is an RBAC `impersonate` check for the requester, in the API
    server's order (user or ServiceAccount, groups, extras, uid); the first refusal is a 403.
    """
    name = headers.get(IMPERSONATE_USER, "")
    groups = list(headers.getall(IMPERSONATE_GROUP, []))
    uid = headers.get(IMPERSONATE_UID, "")
    extra = _impersonated_extra(headers)
    if not name:
        if groups or uid or extra:
            raise errors.bad_request(
                "requested impersonation of groups, extra or uid without impersonating a user"
            )
        return requester
    for attributes in _impersonation_checks(name, groups, extra, uid):
        decision = decide(requester, attributes)
        if not decision.allowed:
            raise forbidden(requester, attributes, decision)
    if not groups and name != ANONYMOUS_USER:
        ref = parse_service_account_username(name)
        if ref is not None:
            groups = [ALL_SERVICE_ACCOUNTS, f"{ALL_SERVICE_ACCOUNTS}:{ref[0]}"]
    return UserInfo(name, tuple(_implicit_groups(name, groups)), uid, extra)


def _impersonated_extra(headers: Any) -> dict[str, tuple[str, ...]]:
    extra: dict[str, list[str]] = {}
    for key, value in headers.items():
        if key.lower().startswith(IMPERSONATE_EXTRA):
            extra.setdefault(unquote(key[len(IMPERSONATE_EXTRA) :]).lower(), []).append(value)
    return {k: tuple(v) for k, v in extra.items()}


def _impersonation_checks(
    name: str, groups: list[str], extra: dict[str, tuple[str, ...]], uid: str
) -> list[Attributes]:
    ref = parse_service_account_username(name)
    if ref is not None:
        checks = [Attributes("impersonate", "serviceaccounts", name=ref[1], namespace=ref[0])]
    else:
        checks = [Attributes("impersonate", "users", name=name)]
    checks += [Attributes("impersonate", "groups", name=g) for g in groups]
    checks += [
        Attributes("impersonate", "userextras", AUTHENTICATION_GROUP, subresource=key, name=v)
        for key, values in extra.items()
        for v in values
    ]
    if uid:
        checks.append(Attributes("impersonate", "uids", AUTHENTICATION_GROUP, name=uid))
    return checks


def _implicit_groups(name: str, groups: list[str]) -> list[str]:
    """`system:authenticated` (or `system:unauthenticated` for anonymous), as the filter adds."""
    if name == ANONYMOUS_USER:
        return groups if ALL_UNAUTHENTICATED in groups else [*groups, ALL_UNAUTHENTICATED]
    if ALL_AUTHENTICATED in groups or ALL_UNAUTHENTICATED in groups:
        return groups
    return [*groups, ALL_AUTHENTICATED]


# -- access reviews --------------------------------------------------------------------------

# (group, plural) of the review resources; each is "create only, answered, never stored".
REVIEWS = frozenset(
    {
        (AUTHORIZATION_GROUP, "selfsubjectaccessreviews"),
        (AUTHORIZATION_GROUP, "subjectaccessreviews"),
        (AUTHORIZATION_GROUP, "localsubjectaccessreviews"),
        (AUTHORIZATION_GROUP, "selfsubjectrulesreviews"),
        (AUTHENTICATION_GROUP, "selfsubjectreviews"),
        (AUTHENTICATION_GROUP, "tokenreviews"),
    }
)
# A TokenReview's answer: the token's user and audiences, or the reason it is not valid.
TokenReviewer = Callable[[Mapping[str, Any]], Any]


class AccessReviews:
    """Answers the review resources for a requester; `decide` is the server's authorizer."""

    def __init__(
        self,
        decide: Decider,
        snapshot: Callable[[], RBACSnapshot],
        review_token: TokenReviewer | None = None,
    ) -> None:
        self._decide = decide
        self._snapshot = snapshot
        # Returns an object with `.user` and `.audiences`, or an error string (tokens.py).
        self._review_token = review_token

    def answer(
        self,
        plural: str,
        kind: str,
        api_version: str,
        requester: UserInfo,
        namespace: str,
        body: Any,
    ) -> dict[str, Any]:
        """The review echoed back with `status` filled in (and `kind`/`apiVersion` set)."""
        if not isinstance(body, dict):
            raise errors.bad_request("the request body must be a JSON object")
        spec = body.get("spec") or {}
        if plural == "selfsubjectreviews":
            status = {"userInfo": _user_info_dict(requester)}
        elif plural == "selfsubjectrulesreviews":
            status = self._rules(requester, str(spec.get("namespace") or ""))
        elif plural == "selfsubjectaccessreviews":
            status = self._access(requester, spec)
        elif plural == "tokenreviews":
            status = self._token(spec)
        else:
            status = self._access(_subject_user(spec), _local_spec(plural, namespace, spec))
        out = {**body, "kind": kind, "apiVersion": api_version, "status": status}
        out["metadata"] = {**(body.get("metadata") or {}), "creationTimestamp": None}
        return out

    def _access(self, user: UserInfo, spec: Mapping[str, Any]) -> dict[str, Any]:
        decision = self._decide(user, review_attributes(spec))
        status: dict[str, Any] = {"allowed": decision.allowed}
        if decision.allowed and decision.binding is not None:
            status["reason"] = decision.reason
        if decision.errors:
            status["evaluationError"] = "; ".join(decision.errors)
        return status

    def _token(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        if self._review_token is None:
            raise errors.method_not_supported("this server does not review tokens")
        answer = self._review_token(spec)
        if isinstance(answer, str):
            return {"user": {}, "error": answer}
        return {
            "authenticated": True,
            "user": _user_info_dict(answer.user),
            "audiences": list(answer.audiences),
        }

    def _rules(self, user: UserInfo, namespace: str) -> dict[str, Any]:
        result = self._snapshot().rules_for(user, namespace)
        status: dict[str, Any] = {
            "resourceRules": [r.to_dict() for r in result.resource_rules],
            "nonResourceRules": [r.to_dict() for r in result.non_resource_rules],
            "incomplete": result.incomplete,
        }
        if result.errors:
            status["evaluationError"] = "; ".join(result.errors)
        return status


def review_attributes(spec: Mapping[str, Any]) -> Attributes:
    """A SubjectAccessReviewSpec's question; exactly one kind of attributes, or 422."""
    resource = spec.get("resourceAttributes")
    non_resource = spec.get("nonResourceAttributes")
    if (resource is None) == (non_resource is None):
        raise _invalid(
            "spec.resourceAttributes",
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )
    if non_resource is not None:
        return Attributes.non_resource(
            str(non_resource.get("verb") or ""), str(non_resource.get("path") or "")
        )
    return Attributes(
        str(resource.get("verb") or ""),
        resource=str(resource.get("resource") or ""),
        api_group=str(resource.get("group") or ""),
        subresource=str(resource.get("subresource") or ""),
        name=str(resource.get("name") or ""),
        namespace=str(resource.get("namespace") or ""),
    )


def _subject_user(spec: Mapping[str, Any]) -> UserInfo:
    """A SubjectAccessReview's subject, taken as given (no implicit groups, like the server)."""
    name = str(spec.get("user") or "")
    groups = tuple(str(g) for g in spec.get("groups") or ())
    if not name and not groups:
        raise _invalid("spec.user", "at least one of user or group must be specified")
    extra = {str(k): tuple(str(x) for x in v) for k, v in (spec.get("extra") or {}).items()}
    return UserInfo(name, groups, str(spec.get("uid") or ""), extra)


def _local_spec(plural: str, namespace: str, spec: Mapping[str, Any]) -> Mapping[str, Any]:
    """LocalSubjectAccessReview: resource questions about the URL's namespace only."""
    if plural != "localsubjectaccessreviews":
        return spec
    if spec.get("nonResourceAttributes") is not None:
        raise _invalid("spec.nonResourceAttributes", "disallowed on this kind of request")
    asked = (spec.get("resourceAttributes") or {}).get("namespace")
    if asked is not None and asked != namespace:
        raise errors.bad_request(
            f"spec.resourceAttributes.namespace must match namespace: {asked} != {namespace}"
        )
    return spec


def _invalid(field: str, message: str) -> ApiError:
    return ApiError(
        422,
        "Invalid",
        f"{field}: Invalid value: {message}",
        {"causes": [{"reason": "FieldValueInvalid", "message": message, "field": field}]},
    )


def _user_info_dict(user: UserInfo) -> dict[str, Any]:
    info: dict[str, Any] = {"username": user.name, "groups": list(user.groups)}
    if user.uid:
        info["uid"] = user.uid
    if user.extra:
        info["extra"] = {k: list(v) for k, v in user.extra.items()}
    return info
