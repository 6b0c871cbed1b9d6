"""Offline Kubernetes RBAC evaluation, with the API server's exact semantics.

One library for every RBAC question ClusterCord asks: the sandbox API server authorizes each
request with it, the RBAC plugin answers who-can, can-i and audits with it. Pure standard
library; objects are the plain dicts the Kubernetes API returns.

>>> snap = RBACSnapshot.from_objects(objects)              # Roles, ClusterRoles, bindings
>>> snap.authorize(UserInfo.authenticated("jane"), Attributes("get", "pods", namespace="dev"))
>>> snap.subjects_who_can(Attributes("create", "pods", namespace="dev"))
>>> covers(owner_rules, requested_rules)                  # the escalation check
"""

from clustercord_sdk.rbac.aggregation import (
    SelectorError,
    aggregate_cluster_roles,
    selector_matches,
)
from clustercord_sdk.rbac.attributes import Attributes
from clustercord_sdk.rbac.identities import (
    IdentityDirectory,
    MappedIdentity,
    chat_user_id,
    user_info_for_chat_user,
)
from clustercord_sdk.rbac.rules import (
    CompiledRule,
    PolicyRule,
    breakdown_rule,
    covers,
    non_resource_url_covers,
    rule_allows,
)
from clustercord_sdk.rbac.snapshot import (
    NO_MATCH,
    PRIVILEGED_RULES,
    Binding,
    Decision,
    Grant,
    Problem,
    RBACSnapshot,
    ResolvedRole,
    RulesResult,
    SubjectGrant,
    gc_paused,
)
from clustercord_sdk.rbac.subjects import (
    ALL_AUTHENTICATED,
    ALL_SERVICE_ACCOUNTS,
    ALL_UNAUTHENTICATED,
    ANONYMOUS_USER,
    SYSTEM_PRIVILEGED_GROUP,
    UserInfo,
    applies_to,
    normalize_subject,
    parse_service_account_username,
    service_account_username,
    subject_applies,
    user_info_for_subject,
)

__all__ = [
    "ALL_AUTHENTICATED",
    "ALL_SERVICE_ACCOUNTS",
    "ALL_UNAUTHENTICATED",
    "ANONYMOUS_USER",
    "NO_MATCH",
    "PRIVILEGED_RULES",
    "SYSTEM_PRIVILEGED_GROUP",
    "Attributes",
    "Binding",
    "CompiledRule",
    "Decision",
    "Grant",
    "IdentityDirectory",
    "MappedIdentity",
    "PolicyRule",
    "Problem",
    "RBACSnapshot",
    "ResolvedRole",
    "RulesResult",
    "SelectorError",
    "SubjectGrant",
    "UserInfo",
    "aggregate_cluster_roles",
    "applies_to",
    "breakdown_rule",
    "chat_user_id",
    "covers",
    "gc_paused",
    "non_resource_url_covers",
    "normalize_subject",
    "parse_service_account_username",
    "rule_allows",
    "selector_matches",
    "service_account_username",
    "subject_applies",
    "user_info_for_chat_user",
    "user_info_for_subject",
]
