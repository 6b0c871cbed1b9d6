"""The security policy, one rule at a time, and the resource estimate."""

from __future__ import annotations

import copy

import pytest

from clustercord_builtins.templates import policy


def deployment(**pod):
    spec = {
        "containers": [
            {
                "name": "app",
                "image": "nginx:1.27.3",
                "resources": {
                    "requests": {"cpu": "250m", "memory": "256Mi"},
                    "limits": {"cpu": "1", "memory": "1Gi"},
                },
            }
        ]
    }
    spec.update(pod)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {}, "template": {"spec": spec}},
    }


def container(**changes):
    obj = deployment()
    obj["spec"]["template"]["spec"]["containers"][0].update(changes)
    return obj


def rules(report):
    return [(f.rule, f.path) for f in report.errors]


def test_a_clean_workload_passes():
    report = policy.check([deployment()])
    assert report.ok and not report.warnings and not report.elevated


@pytest.mark.parametrize(
    ("obj", "rule", "path"),
    [
        (
            container(securityContext={"privileged": True}),
            "privileged-container",
            "spec.template.spec.containers[0].securityContext.privileged",
        ),
        (
            container(securityContext={"allowPrivilegeEscalation": True}),
            "privilege-escalation-container",
            "spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation",
        ),
        (deployment(hostPID=True), "host-pid", "spec.template.spec.hostPID"),
        (deployment(hostIPC=True), "host-ipc", "spec.template.spec.hostIPC"),
        (
            deployment(volumes=[{"name": "d", "hostPath": {"path": "/var/run/docker.sock"}}]),
            "docker-sock",
            "spec.template.spec.volumes[0].hostPath.path",
        ),
        (container(image="nginx"), "latest-tag", "spec.template.spec.containers[0].image"),
        (
            container(image="registry:5000/team/nginx:latest"),
            "latest-tag",
            "spec.template.spec.containers[0].image",
        ),
    ],
)
def test_blocked_rules(obj, rule, path):
    report = policy.check([obj], ("hostPath", "hostNetwork", "hostPort", "runAsRoot"))
    assert rules(report) == [(rule, path)]


def test_an_image_pinned_by_digest_or_registry_port_is_fine():
    assert policy.image_problem("registry:5000/nginx:1.27") is None
    assert policy.image_problem("nginx@sha256:" + "a" * 64) is None
    assert policy.image_problem("registry:5000/nginx") == (
        "image 'registry:5000/nginx' has no tag: pin a version (never latest)"
    )


@pytest.mark.parametrize(
    ("obj", "feature"),
    [
        (deployment(hostNetwork=True), "hostNetwork"),
        (deployment(volumes=[{"name": "p", "hostPath": {"path": "/proc"}}]), "hostPath"),
        (container(ports=[{"containerPort": 25565, "hostPort": 25565}]), "hostPort"),
        (container(securityContext={"runAsUser": 0}), "runAsRoot"),
        (deployment(securityContext={"runAsUser": 0}), "runAsRoot"),
    ],
)
def test_elevated_rights_must_be_declared(obj, feature):
    undeclared = policy.check([obj])
    assert [(f.rule, f.message) for f in undeclared.errors] == [
        (
            "undeclared-elevated",
            f"the manifests use {feature} but requirements.features does not declare it",
        )
    ]
    declared = policy.check([obj], (feature,))
    assert declared.ok and declared.elevated == {feature}


def test_missing_limits_are_warnings_not_errors():
    obj = deployment()
    del obj["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
    report = policy.check([obj])
    assert report.ok
    assert [str(w) for w in report.warnings] == [
        "Deployment/web spec.template.spec.containers[0].resources.limits: container app has "
        "no memory limit [unset-limits]"
    ]


def test_kinds_outside_the_supported_set_are_refused():
    hook = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "x"},
    }
    (finding,) = policy.check([hook]).errors
    assert (
        finding.rule == "unsupported-kind"
        and "MutatingWebhookConfiguration is not a kind templates may create" in finding.message
    )


CLUSTER_WIDE = [
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "x"},
    },
    {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "things.example.com"},
    },
]


@pytest.mark.parametrize("obj", CLUSTER_WIDE, ids=lambda o: o["kind"])
def test_cluster_wide_objects_need_the_declared_elevated_feature(obj):
    undeclared = policy.check([obj])
    assert [(f.rule, str(f.message)) for f in undeclared.errors] == [
        (
            "undeclared-elevated",
            "the manifests use clusterWide but requirements.features does not declare it",
        )
    ]
    declared = policy.check([obj], ("clusterWide",))
    assert declared.ok and declared.elevated == {"clusterWide"}


def test_the_estimate_sums_requests_limits_replicas_and_storage():
    cron = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "backup"},
        "spec": {
            "jobTemplate": {
                "spec": {
                    "template": {"spec": copy.deepcopy(deployment()["spec"]["template"]["spec"])}
                }
            }
        },
    }
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {"resources": {"requests": {"storage": "10Gi"}}},
    }
    estimate = policy.check([deployment(), cron, claim]).estimate
    assert estimate.as_dict() == {
        "cpu_requests": "750m",  # 2 replicas x 250m + the job's 250m
        "cpu_limits": "3",
        "memory_requests": "768Mi",
        "memory_limits": "3Gi",
        "storage": "10Gi",
    }


RBAC = "rbac.authorization.k8s.io/v1"


def role(*rules_):
    return {
        "apiVersion": RBAC,
        "kind": "Role",
        "metadata": {"name": "runner"},
        "rules": list(rules_),
    }


def binding(ref_kind="Role", **subject):
    return {
        "apiVersion": RBAC,
        "kind": "RoleBinding",
        "metadata": {"name": "runner", "namespace": "ci"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": ref_kind, "name": "runner"},
        "subjects": [{"kind": "ServiceAccount", "name": "runner", **subject}],
    }


PODS = {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "create", "delete"]}


def test_a_runner_may_manage_pods_in_its_own_namespace():
    report = policy.check([role(PODS), binding(), binding(namespace="ci")])
    assert report.ok, report.errors
    assert not report.elevated


@pytest.mark.parametrize(
    ("obj", "rule", "path"),
    [
        (role({**PODS, "verbs": ["*"]}), "wildcard-in-rules", "rules[0].verbs"),
        (role(PODS, {**PODS, "resources": ["*"]}), "wildcard-in-rules", "rules[1].resources"),
        (role({**PODS, "apiGroups": ["*"]}), "wildcard-in-rules", "rules[0].apiGroups"),
        (
            role(
                {
                    "apiGroups": ["rbac.authorization.k8s.io"],
                    "resources": ["roles"],
                    "verbs": ["bind", "escalate"],
                }
            ),
            "access-to-create-rbac",
            "rules[0].verbs",
        ),
        (
            role({"nonResourceURLs": ["/metrics"], "verbs": ["get"]}),
            "wildcard-in-rules",
            "rules[0].nonResourceURLs",
        ),
        (binding("ClusterRole"), "cluster-role-binding", "roleRef.kind"),
        (binding(namespace="kube-system"), "foreign-subject", "subjects[0]"),
    ],
)
def test_rbac_that_reaches_beyond_the_release_is_refused(obj, rule, path):
    report = policy.check([obj])
    assert (rule, path) in rules(report)


def test_a_binding_of_a_user_or_group_is_refused():
    obj = binding()
    obj["subjects"] = [{"kind": "Group", "name": "system:masters", "apiGroup": RBAC[:-3]}]
    assert rules(policy.check([obj])) == [("foreign-subject", "subjects[0]")]
