"""The risk rules: stable ids, severities, what they look for, what to do about them.

The table covers the union of krane, KubiScan and rbac-police (``peers`` names theirs) plus
the Kubernetes "RBAC good practices" escalation risks. A rule fires when one of its probes,
an access request, is granted by a single policy rule; the probes use the authorizer's own
matching, so ``pods`` never stands for ``pods/exec`` and a ``resourceNames`` rule never
stands for the whole resource. A probe of a cluster-scoped resource fires only through a
ClusterRoleBinding, since a RoleBinding cannot grant it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from clustercord_sdk.rbac import Attributes

SEVERITIES = ("critical", "high", "medium", "low")
RBAC = "rbac.authorization.k8s.io"
WORKLOADS = (
    ("deployments", "apps"),
    ("daemonsets", "apps"),
    ("statefulsets", "apps"),
    ("replicasets", "apps"),
    ("replicationcontrollers", ""),
    ("jobs", "batch"),
    ("cronjobs", "batch"),
)
CLUSTER_SCOPED = frozenset(
    {
        "nodes",
        "nodes/proxy",
        "nodes/status",
        "namespaces",
        "persistentvolumes",
        "clusterroles",
        "clusterrolebindings",
        "certificatesigningrequests",
        "certificatesigningrequests/approval",
        "signers",
        "mutatingwebhookconfigurations",
        "validatingwebhookconfigurations",
        "validatingadmissionpolicies",
        "validatingadmissionpolicybindings",
        "customresourcedefinitions",
        "users",
        "groups",
        "userextras",
        "uids",
    }
)


@dataclass(frozen=True)
class Probe:
    """One request that, if a rule grants it, makes the risk rule fire."""

    attributes: Attributes
    namespace: str = ""
    """Only in this namespace (``aws-auth`` lives in ``kube-system``)."""

    @property
    def cluster_scoped(self) -> bool:
        return self.attributes.combined_resource in CLUSTER_SCOPED


def probes(
    verbs: tuple[str, ...],
    resources: tuple[tuple[str, str], ...],
    *,
    name: str = "",
    namespace: str = "",
) -> tuple[Probe, ...]:
    """Every (verb, resource) pair; a resource is ``name[/subresource]`` with its group."""
    out = []
    for verb in verbs:
        for resource, group in resources:
            base, _, sub = resource.partition("/")
            out.append(Probe(Attributes(verb, base, group, sub, name=name), namespace))
    return tuple(out)


@dataclass(frozen=True)
class RiskRule:
    id: str
    title: str
    severity: str
    recommendation: str
    probes: tuple[Probe, ...] = ()
    peers: tuple[str, ...] = field(default=(), compare=False)


FULL_WILDCARD = "RBAC-001"
NAMESPACE_WILDCARD = "RBAC-002"
MISSING_ROLE = "RBAC-060"
INVALID_ROLE_REF = "RBAC-061"
INVALID_SUBJECT = "RBAC-062"
MISSING_SERVICE_ACCOUNT = "RBAC-063"
ANONYMOUS = "RBAC-050"
ALL_AUTHENTICATED = "RBAC-051"
ALL_SERVICE_ACCOUNTS = "RBAC-052"
ESCALATION = "RBAC-090"

STAR_RESOURCES = (
    ("secrets", ""),
    ("pods", ""),
    *WORKLOADS,
    ("roles", RBAC),
    ("clusterroles", RBAC),
    ("rolebindings", RBAC),
    ("clusterrolebindings", RBAC),
    ("users", ""),
    ("groups", ""),
)

RULES: tuple[RiskRule, ...] = (
    RiskRule(
        FULL_WILDCARD,
        "Full wildcard cluster-wide: every verb on every resource (cluster-admin)",
        "critical",
        "Bind a role that lists the verbs and resources the subject needs; keep "
        "cluster-admin for break-glass accounts.",
        probes(("*",), (("*", "*"),)),
        ("krane open-cluster-wide-access", "KubiScan risky-any-verb", "rbac-police cluster_admin"),
    ),
    RiskRule(
        NAMESPACE_WILDCARD,
        "Full wildcard in a namespace: every verb on every resource there",
        "high",
        "Replace the wildcard with the verbs and resources the workload uses.",
        (),  # the namespace form of RBAC-001, decided by the binding kind
        ("krane open-ns-level-access",),
    ),
    RiskRule(
        "RBAC-003",
        "Any verb (*) on a sensitive resource",
        "high",
        "List the verbs needed instead of '*': it also grants future verbs such as "
        "escalate or impersonate.",
        probes(("*",), STAR_RESOURCES),
        ("krane any-verb-*", "KubiScan any-verb-*"),
    ),
    RiskRule(
        "RBAC-004",
        "A verb on every resource (*) of the core group",
        "high",
        "Name the resources: '*' includes secrets and every resource added later.",
        probes(
            ("create", "delete", "deletecollection", "get", "list", "impersonate"), (("*", ""),)
        ),
        ("krane any-resource-*", "KubiScan any-resource-*"),
    ),
    RiskRule(
        "RBAC-010",
        "List or watch secrets: reads every Secret, ServiceAccount tokens included",
        "high",
        "Grant get on the named secrets (resourceNames) the workload reads.",
        probes(("list", "watch"), (("secrets", ""),)),
        ("krane list-secrets", "KubiScan list-secrets", "rbac-police list_secrets"),
    ),
    RiskRule(
        "RBAC-011",
        "Get any secret by name",
        "medium",
        "Restrict get to the secrets needed with resourceNames.",
        probes(("get",), (("secrets", ""),)),
        ("krane get-secrets", "KubiScan get-secrets", "rbac-police retrieve_token_secrets"),
    ),
    RiskRule(
        "RBAC-012",
        "Create ServiceAccount tokens (TokenRequest): act as any ServiceAccount in scope",
        "critical",
        "Remove create on serviceaccounts/token; workloads get projected tokens without it.",
        probes(("create",), (("serviceaccounts/token", ""),)),
        ("rbac-police token_request",),
    ),
    RiskRule(
        "RBAC-013",
        "Create secrets: a service-account-token Secret yields any ServiceAccount's token",
        "high",
        "Grant create on secrets only to controllers that must; never with get/list.",
        probes(("create",), (("secrets", ""),)),
        ("rbac-police issue_token_secrets",),
    ),
    RiskRule(
        "RBAC-020",
        "Impersonate users, groups or ServiceAccounts",
        "critical",
        "Remove impersonate, or restrict it with resourceNames to the identities needed.",
        probes(
            ("impersonate",),
            (
                ("users", ""),
                ("groups", ""),
                ("serviceaccounts", ""),
                ("userextras", "authentication.k8s.io"),
                ("uids", "authentication.k8s.io"),
            ),
        )
        # restricted to one name, but the name that bypasses RBAC
        + probes(("impersonate",), (("groups", ""),), name="system:masters"),
        ("krane impersonate-privileged-groups", "KubiScan impersonate", "rbac-police impersonate"),
    ),
    RiskRule(
        "RBAC-021",
        "Bind roles: grant permissions the subject does not hold",
        "critical",
        "Remove bind, or restrict it with resourceNames to harmless roles.",
        probes(("bind",), (("roles", RBAC), ("clusterroles", RBAC)))
        + probes(("bind",), (("clusterroles", RBAC),), name="cluster-admin"),
        ("rbac-police bind_roles", "krane rbac-management"),
    ),
    RiskRule(
        "RBAC-022",
        "Escalate roles: write rules the subject does not hold",
        "critical",
        "Remove escalate; only the role aggregation controller needs it.",
        probes(("escalate",), (("roles", RBAC), ("clusterroles", RBAC))),
        ("rbac-police escalate_roles",),
    ),
    RiskRule(
        "RBAC-023",
        "Create or change role bindings",
        "medium",
        "Keep binding management with cluster administrators or a reviewed pipeline.",
        probes(
            ("create", "update", "patch"),
            (("rolebindings", RBAC), ("clusterrolebindings", RBAC)),
        ),
        ("krane create-rolebinding-*", "KubiScan create-rolebinding", "krane add-rolebinding"),
    ),
    RiskRule(
        "RBAC-024",
        "Create or change roles",
        "medium",
        "Keep role management with cluster administrators or a reviewed pipeline.",
        probes(("create", "update", "patch"), (("roles", RBAC), ("clusterroles", RBAC))),
        ("krane rbac-management",),
    ),
    RiskRule(
        "RBAC-030",
        "Create pods: run as any ServiceAccount of the namespace and mount its token",
        "high",
        "Let a controller create pods; give people workload write access through CI.",
        probes(("create",), (("pods", ""),)),
        ("KubiScan create-pod", "rbac-police assign_sa"),
    ),
    RiskRule(
        "RBAC-031",
        "Create or update workloads (they create pods with any ServiceAccount)",
        "high",
        "Deploy through a reviewed pipeline; restrict ServiceAccounts with admission policy.",
        probes(("create", "update", "patch"), WORKLOADS),
        ("krane create-*/update-*", "KubiScan create-*/update-*"),
    ),
    RiskRule(
        "RBAC-032",
        "Exec or attach into pods: run commands inside running containers",
        "high",
        "Remove pods/exec and pods/attach from everyday roles; grant them just in time.",
        probes(("create", "get"), (("pods/exec", ""), ("pods/attach", ""))),
        ("krane exec-pods", "krane attach-pods", "KubiScan exec/attach", "rbac-police pods_exec"),
    ),
    RiskRule(
        "RBAC-033",
        "Add ephemeral containers: a debug container inside any pod",
        "high",
        "Remove pods/ephemeralcontainers outside debugging roles.",
        probes(("update", "patch"), (("pods/ephemeralcontainers", ""),)),
        ("rbac-police pods_ephemeral_ctrs",),
    ),
    RiskRule(
        "RBAC-034",
        "Update pods: swap images or labels of running pods",
        "medium",
        "Change workloads through their controllers instead of editing pods.",
        probes(("update", "patch"), (("pods", ""),)),
        ("rbac-police modify_pods",),
    ),
    RiskRule(
        "RBAC-040",
        "nodes/proxy: the kubelet API of every node (exec into any pod, bypassing audit)",
        "high",
        "Remove nodes/proxy; metrics need only nodes/metrics.",
        probes(("get", "create"), (("nodes/proxy", ""),)),
        ("KubiScan node-proxy", "rbac-police nodes_proxy"),
    ),
    RiskRule(
        "RBAC-041",
        "Update nodes or node status: taint, label or fake node state",
        "medium",
        "Only kubelets and node controllers should write nodes.",
        probes(("update", "patch"), (("nodes", ""), ("nodes/status", ""))),
        ("rbac-police modify_node_status",),
    ),
    RiskRule(
        "RBAC-042",
        "Approve certificate signing requests: mint client certificates",
        "critical",
        "Leave CSR approval to the controller manager and a reviewed approver.",
        probes(
            ("update", "patch"),
            (("certificatesigningrequests/approval", "certificates.k8s.io"),),
        )
        + probes(("approve",), (("signers", "certificates.k8s.io"),)),
        ("rbac-police approve_csrs",),
    ),
    RiskRule(
        "RBAC-043",
        "Control admission webhooks and policies: intercept or alter every object",
        "high",
        "Only cluster administrators should change admission configuration.",
        probes(
            ("create", "update", "patch", "delete"),
            (
                ("mutatingwebhookconfigurations", "admissionregistration.k8s.io"),
                ("validatingwebhookconfigurations", "admissionregistration.k8s.io"),
                ("validatingadmissionpolicies", "admissionregistration.k8s.io"),
                ("validatingadmissionpolicybindings", "admissionregistration.k8s.io"),
            ),
        ),
        ("rbac-police control_webhooks", "rbac-tool admission"),
    ),
    RiskRule(
        "RBAC-044",
        "Create PersistentVolumes: a hostPath volume mounts a node's filesystem",
        "high",
        "Provision volumes through StorageClasses; keep PV creation with administrators.",
        probes(("create",), (("persistentvolumes", ""),)),
        ("k8s good practices: PersistentVolume creation",),
    ),
    RiskRule(
        "RBAC-045",
        "Update service status: hijack traffic through external IPs (CVE-2020-8554)",
        "medium",
        "Remove update on services/status; only load-balancer controllers need it.",
        probes(("update", "patch"), (("services/status", ""),)),
        ("rbac-police modify_service_status_cve_2020_8554",),
    ),
    RiskRule(
        "RBAC-046",
        "Update pod status: fake readiness and take traffic",
        "low",
        "Only the kubelet should write pod status.",
        probes(("update", "patch"), (("pods/status", ""),)),
        ("rbac-police modify_pod_status",),
    ),
    RiskRule(
        "RBAC-047",
        "Update namespaces: change Pod Security labels and lift isolation",
        "medium",
        "Manage namespaces through a reviewed pipeline.",
        probes(("update", "patch"), (("namespaces", ""),)),
        ("k8s good practices: namespace modification",),
    ),
    RiskRule(
        "RBAC-048",
        "Create or change CustomResourceDefinitions",
        "medium",
        "Keep CRD management with cluster administrators.",
        probes(
            ("create", "update", "patch"),
            (("customresourcedefinitions", "apiextensions.k8s.io"),),
        ),
        ("rbac-tool CRDs",),
    ),
    RiskRule(
        "RBAC-049",
        "Edit the EKS aws-auth ConfigMap: map any IAM identity to system:masters",
        "critical",
        "Only the cluster owner should edit kube-system/aws-auth (or use EKS access entries).",
        probes(
            ("update", "patch"), (("configmaps", ""),), name="aws-auth", namespace="kube-system"
        ),
        ("rbac-police eks_modify_aws_auth",),
    ),
    RiskRule(
        ANONYMOUS,
        "Unauthenticated requests are granted permissions",
        "critical",
        "Bind nothing to system:anonymous or system:unauthenticated beyond public-info.",
        (),
        ("krane unauthenticated-subject-access",),
    ),
    RiskRule(
        ALL_AUTHENTICATED,
        "Every authenticated user (system:authenticated) is granted permissions",
        "high",
        "Bind named groups instead of system:authenticated.",
        (),
        (),
    ),
    RiskRule(
        ALL_SERVICE_ACCOUNTS,
        "Every ServiceAccount (of a namespace or the cluster) is granted permissions",
        "medium",
        "Bind the ServiceAccounts that need it by name.",
        (),
        (),
    ),
    RiskRule(
        MISSING_ROLE,
        "Binding to a role that does not exist (grants nothing today, everything it is "
        "created with tomorrow)",
        "medium",
        "Delete the binding, or create the role it expects on purpose.",
        (),
        ("krane non-existing-roles",),
    ),
    RiskRule(
        INVALID_ROLE_REF,
        "ClusterRoleBinding to a Role, or an unknown role kind (grants nothing)",
        "low",
        "Fix or delete the binding.",
        (),
        (),
    ),
    RiskRule(
        INVALID_SUBJECT,
        "Binding subject that can never match (unknown kind, ServiceAccount without namespace)",
        "low",
        "Fix the subject or delete it.",
        (),
        (),
    ),
    RiskRule(
        MISSING_SERVICE_ACCOUNT,
        "Binding to a ServiceAccount that does not exist: whoever creates it inherits the role",
        "medium",
        "Remove the subject from the binding, or create the ServiceAccount on purpose; anyone "
        "who may create ServiceAccounts in that namespace gets the role until then.",
        (),
        ("rbac-tool analysis (dangling subjects)",),
    ),
    RiskRule(
        ESCALATION,
        "Escalation path: the subject can become a more privileged identity",
        "critical",
        "Break the path: remove the permission that leads to it, or unbind the privileged "
        "identity it reaches.",
        (),
        (),
    ),
)

BY_ID = {rule.id: rule for rule in RULES}
