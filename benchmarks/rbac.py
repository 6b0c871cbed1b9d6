"""Benchmark of the RBAC plugin on a cluster the size of a large production one.

KubeHound's "big" cluster (1,374 Roles, 721 ClusterRoles, 4,491 RoleBindings, 676
ClusterRoleBindings; 200 namespaces here), generated with a fixed seed on top of Kubernetes'
bootstrap policy. Measured: a full audit (snapshot + every risk rule + escalation paths), one
who-can, peak memory, and, as the baseline in the same run, the same checks answered by one
SubjectAccessReview each through the sandbox API server.

And the user's commands end to end, as issue 18 asks of every benchmark: ``clustercord run
"/rbac audit"`` (who-can, matrix, visualize too), with console rendering and with ``--json``
(its output size), against the same cluster served by the sandbox, next to ``clustercord run
"/plugin list"`` (the start-up every command pays) in the same run. Goal: < 2 s beyond that
start-up, JSON < 1 MB.

    python benchmarks/rbac.py [--quick] [--commands]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from measure import Row  # benchmarks/measure.py

ROLES, CLUSTER_ROLES, ROLE_BINDINGS, CLUSTER_ROLE_BINDINGS, NAMESPACES = 1374, 721, 4491, 676, 200
AUDIT_TARGET_S, WHO_CAN_TARGET_MS, MEMORY_TARGET_MB = 2.0, 100.0, 300.0
#: The user's command end to end (``clustercord run``): seconds beyond the start-up of
#: ``clustercord run "/plugin list"``, and the size of its ``--json`` answer.
COMMAND_TARGET_S, JSON_TARGET_MB = 2.0, 1.0
COMMANDS = (
    "/rbac audit",
    "/rbac who-can verb:get resource:secrets",
    "/rbac matrix namespace:ns-017",
    "/rbac visualize",
)
SAR_SAMPLE = 300  # subjects asked one by one through the API server
RBAC = "rbac.authorization.k8s.io"

CORE = [
    "pods",
    "services",
    "configmaps",
    "secrets",
    "endpoints",
    "persistentvolumeclaims",
    "serviceaccounts",
    "events",
    "pods/log",
    "pods/exec",
    "pods/status",
    "services/status",
]
APPS = ["deployments", "statefulsets", "daemonsets", "replicasets", "deployments/scale"]
OTHER = [
    ("batch", "jobs"),
    ("batch", "cronjobs"),
    ("networking.k8s.io", "ingresses"),
    ("networking.k8s.io", "networkpolicies"),
    ("policy", "poddisruptionbudgets"),
    ("autoscaling", "horizontalpodautoscalers"),
    ("coordination.k8s.io", "leases"),
]
CRDS = [
    (f"{kind}.example{i}.io", plural)
    for i in range(40)
    for kind, plural in (("widgets", "widgets"), ("gadgets", "gadgets"))
]
VERB_SETS = [
    ["get", "list", "watch"],
    ["get", "list", "watch", "create", "update", "patch", "delete"],
    ["get"],
    ["create"],
    ["update", "patch"],
    ["*"],
    ["delete", "deletecollection"],
]


def _rule(rng: random.Random) -> dict[str, Any]:
    pick = rng.random()
    if pick < 0.01:
        return {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}
    if pick < 0.45:
        group, resources = "", rng.sample(CORE, rng.randint(1, 4))
    elif pick < 0.7:
        group, resources = "apps", rng.sample(APPS, rng.randint(1, 3))
    elif pick < 0.85:
        group, resource = rng.choice(OTHER)
        resources = [resource]
    else:
        group, resource = rng.choice(CRDS)
        group = group.split(".", 1)[1]
        resources = [resource, f"{resource}/status"]
    rule: dict[str, Any] = {
        "apiGroups": [group],
        "resources": resources,
        "verbs": list(rng.choice(VERB_SETS)),
    }
    if rng.random() < 0.05:
        rule["resourceNames"] = [f"obj-{rng.randint(0, 9)}"]
    return rule


def _subject(rng: random.Random, namespace: str) -> dict[str, str]:
    pick = rng.random()
    if pick < 0.45:
        return {
            "kind": "ServiceAccount",
            "name": f"sa-{rng.randint(0, 14)}",
            "namespace": namespace,
        }
    if pick < 0.8:
        return {"kind": "User", "apiGroup": RBAC, "name": f"user-{rng.randint(0, 999)}@corp"}
    return {"kind": "Group", "apiGroup": RBAC, "name": f"team-{rng.randint(0, 59)}"}


def generate(seed: int = 1) -> list[dict[str, Any]]:
    """The bootstrap policy plus generated objects, exactly the target counts of each kind."""
    from clustercord_sandbox.fixtures import empty

    rng = random.Random(seed)
    base = [o for o in empty() if o["kind"] != "Namespace"]
    have = {
        k: sum(1 for o in base if o["kind"] == k)
        for k in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")
    }
    namespaces = [f"ns-{i:03d}" for i in range(NAMESPACES)]
    objects = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in namespaces
    ]
    objects += base
    rv = f"{RBAC}/v1"
    cluster_roles = [f"cr-{i}" for i in range(CLUSTER_ROLES - have["ClusterRole"])]
    for i, name in enumerate(cluster_roles):
        meta: dict[str, Any] = {"name": name, "labels": {"team": f"t{i % 30}"}}
        obj: dict[str, Any] = {"apiVersion": rv, "kind": "ClusterRole", "metadata": meta}
        if i % 50 == 0:  # an aggregated role every 50
            obj["aggregationRule"] = {
                "clusterRoleSelectors": [{"matchLabels": {"team": f"t{i % 30 + 1}"}}]
            }
            obj["rules"] = []
        else:
            obj["rules"] = [_rule(rng) for _ in range(rng.randint(1, 8))]
        objects.append(obj)
    roles: list[tuple[str, str]] = []
    for i in range(ROLES - have["Role"]):
        ns, name = namespaces[i % NAMESPACES], f"role-{i}"
        roles.append((ns, name))
        objects.append(
            {
                "apiVersion": rv,
                "kind": "Role",
                "metadata": {"name": name, "namespace": ns},
                "rules": [_rule(rng) for _ in range(rng.randint(1, 6))],
            }
        )
    all_cluster_roles = [*cluster_roles, "view", "edit", "admin", "cluster-admin"]
    for i in range(ROLE_BINDINGS - have["RoleBinding"]):
        if rng.random() < 0.55:
            ns, role = rng.choice(roles)
            ref = {"apiGroup": RBAC, "kind": "Role", "name": role}
        else:
            ns = rng.choice(namespaces)
            ref = {"apiGroup": RBAC, "kind": "ClusterRole", "name": rng.choice(all_cluster_roles)}
        if i % 400 == 0:
            ref = {"apiGroup": RBAC, "kind": "Role", "name": f"deleted-{i}"}  # a dangling one
        objects.append(
            {
                "apiVersion": rv,
                "kind": "RoleBinding",
                "metadata": {"name": f"rb-{i}", "namespace": ns},
                "roleRef": ref,
                "subjects": [_subject(rng, ns) for _ in range(rng.randint(1, 3))],
            }
        )
    for i in range(CLUSTER_ROLE_BINDINGS - have["ClusterRoleBinding"]):
        ns = rng.choice(namespaces)
        role = "cluster-admin" if i % 97 == 0 else rng.choice(all_cluster_roles)
        objects.append(
            {
                "apiVersion": rv,
                "kind": "ClusterRoleBinding",
                "metadata": {"name": f"crb-{i}"},
                "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role},
                "subjects": [_subject(rng, ns) for _ in range(rng.randint(1, 2))],
            }
        )
    return objects


def _median(values: list[float]) -> float:
    return statistics.median(values)


class Reviews:
    """SubjectAccessReviews over one kept-alive HTTPS connection (a fair baseline)."""

    def __init__(self, server: Any) -> None:
        host, port = server.url.split("//", 1)[1].rsplit(":", 1)
        context = ssl.create_default_context(cadata=server.certificate.ca_pem.decode())
        self.connection = http.client.HTTPSConnection(host, int(port), context=context)
        self.headers = {
            "Authorization": f"Bearer {server.admin_token}",
            "Content-Type": "application/json",
        }

    def allowed(self, user: Any, attributes: dict[str, str]) -> bool:
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": user.name,
                "groups": list(user.groups),
                "resourceAttributes": attributes,
            },
        }
        self.connection.request(
            "POST",
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            json.dumps(body),
            self.headers,
        )
        response = self.connection.getresponse()
        answer = json.loads(response.read())
        if response.status != 201 and response.status != 200:
            raise RuntimeError(f"SubjectAccessReview answered {response.status}: {answer}")
        return bool(answer["status"]["allowed"])


def bench_rbac(reps: int = 5, scratch: Path | None = None) -> list[Row]:
    """Rows of (name, measured, baseline, ratio, target) for benchmarks/run.py's summary."""
    from clustercord_builtins.rbac.audit import Auditor
    from clustercord_builtins.rbac.questions import who_can
    from clustercord_sandbox.background import BackgroundSandbox
    from clustercord_sandbox.fixtures import load
    from clustercord_sdk.rbac import Attributes, RBACSnapshot, user_info_for_subject

    objects = generate()
    counts = {
        k: sum(1 for o in objects if o["kind"] == k)
        for k in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding", "Namespace")
    }
    print("  generated " + ", ".join(f"{n:,} {k}s" for k, n in counts.items()))
    question = Attributes("create", "pods", namespace="ns-017")

    # Peak memory of one snapshot + audit, measured alone (tracemalloc slows everything).
    tracemalloc.start()
    Auditor(RBACSnapshot.from_objects(objects)).run()
    peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()

    audit_s, cpu_s, build_s, who_ms, findings = [], [], [], [], 0
    for _ in range(reps):
        start, cpu = time.perf_counter(), time.process_time()
        snapshot = RBACSnapshot.from_objects(objects)
        built = time.perf_counter()
        result = Auditor(snapshot).run()
        audit_s.append(time.perf_counter() - start)
        cpu_s.append(time.process_time() - cpu)
        build_s.append(built - start)
        findings = len(result.findings)
        start = time.perf_counter()
        answer = who_can(snapshot, question)
        who_ms.append((time.perf_counter() - start) * 1000)
    subjects = answer.subjects()
    print(f"  snapshot (aggregation, indexes)    median {_median(build_s) * 1000:7.0f} ms")
    print(
        f"  full audit incl. snapshot          median {_median(audit_s) * 1000:7.0f} ms"
        f"  ({findings:,} findings; CPU {_median(cpu_s) * 1000:.0f} ms)"
    )
    print(
        f"  who-can create pods in ns-017      median {_median(who_ms):7.1f} ms"
        f"  ({len(subjects)} subjects)"
    )
    print(f"  peak memory (tracemalloc)          {peak_mb:7.0f} MB")

    # Baseline: the same question, one SubjectAccessReview per subject, through the sandbox.
    everyone = snapshot.subjects()
    rng = random.Random(7)
    sample = rng.sample(everyone, min(SAR_SAMPLE, len(everyone)))
    users = [
        user_info_for_subject(s)
        for s in sample
        if s["kind"] != "ServiceAccount" or s.get("namespace")
    ]
    box = BackgroundSandbox()
    server = box.start()
    try:
        box.call(server.controllers.stop())
        server.controllers = None
        box.call(_load(load, server, objects), timeout=600)
        reviews = Reviews(server)
        attributes = {"verb": "create", "resource": "pods", "namespace": "ns-017"}
        reviews.allowed(users[0], attributes)  # warm-up: TLS, the server's RBAC snapshot
        sar_ms, offline_ms, disagreements = [], [], 0
        for user in users:
            start = time.perf_counter()
            online = reviews.allowed(user, attributes)
            sar_ms.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            offline = snapshot.authorize(user, question).allowed
            offline_ms.append((time.perf_counter() - start) * 1000)
            disagreements += online != offline
        command_rows = end_to_end(box, max(3, reps // 2), scratch)
    finally:
        box.stop()
    per_sar = _median(sar_ms)
    sar_who_can_ms = per_sar * len(everyone)
    print(f"  one SubjectAccessReview            median {per_sar:7.2f} ms  (n={len(users)})")
    print(f"  one offline check                  median {_median(offline_ms):7.3f} ms")
    print(
        f"  who-can by reviews: {len(everyone):,} subjects × {per_sar:.2f} ms"
        f" = {sar_who_can_ms / 1000:.1f} s; disagreements: {disagreements}"
    )
    if disagreements:
        raise RuntimeError(f"{disagreements} offline answers differ from the API server's")

    def met(value: float, target: float) -> str:
        return f"< {target:g} {'met' if value < target else 'MISSED'}"

    return [
        *command_rows,
        (
            "rbac: full audit (big cluster)",
            f"{_median(audit_s) * 1000:.0f} ms",
            "-",
            "-",
            met(_median(audit_s), AUDIT_TARGET_S) + " (s)",
        ),
        (
            "rbac: who-can, offline",
            f"{_median(who_ms):.1f} ms",
            f"{sar_who_can_ms:.0f} ms (1 SAR/subject)",
            f"{_median(who_ms) / sar_who_can_ms:.4f}",
            met(_median(who_ms), WHO_CAN_TARGET_MS) + " (ms)",
        ),
        (
            "rbac: one check",
            f"{_median(offline_ms) * 1000:.0f} µs",
            f"{per_sar * 1000:.0f} µs (SAR)",
            f"{_median(offline_ms) / per_sar:.4f}",
            "-",
        ),
        (
            "rbac: peak memory",
            f"{peak_mb:.0f} MB",
            "-",
            "-",
            met(peak_mb, MEMORY_TARGET_MB) + " (MB)",
        ),
    ]


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{argv[1:]} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return elapsed, done


def end_to_end(box: Any, reps: int, scratch: Path | None) -> list[Row]:
    """The user's commands as they run them: ``clustercord run`` (console rendering) and
    ``clustercord run --json`` against the big cluster the sandbox serves, each run next to
    ``clustercord run "/plugin list"`` (the start-up every command pays), interleaved."""
    from clustercord.signing import TrustStore
    from clustercord_testing.harness import TestSigner
    from clustercord_testing.site import signed_builtins_site

    cli = Path(sys.executable).parent / "clustercord"
    own = scratch is None
    root = (
        Path(tempfile.mkdtemp(prefix="ccbench-rbac")) if scratch is None else scratch / "rbac-e2e"
    )
    root.mkdir(parents=True, exist_ok=True)
    signer = TestSigner()
    try:
        data_dir = root / "data"
        data_dir.mkdir()
        signed_builtins_site(root / "site", signer)
        TrustStore(data_dir / "trust").trust(signer.public_key, label="bench", kind="release")
        env = {
            **os.environ,
            "CLUSTERCORD_DATA_DIR": str(data_dir),
            "PYTHONPATH": str(root / "site"),
            "KUBECONFIG": str(box.write_kubeconfig(root / "kubeconfig")),
            "COLUMNS": "120",
        }
        runs: dict[tuple[str, bool], list[float]] = {}
        sizes: dict[tuple[str, bool], int] = {}
        startup: list[float] = []
        plain = [str(cli), "run"]
        _run([*plain, "/plugin list"], env)  # warm-up: bytecode, the trust store
        for _ in range(reps):
            startup.append(_run([*plain, "/plugin list"], env)[0])
            for command in COMMANDS:
                for as_json in (False, True):
                    argv = [*plain, *(["--json"] if as_json else []), command]
                    elapsed, done = _run(argv, env)
                    runs.setdefault((command, as_json), []).append(elapsed)
                    sizes[(command, as_json)] = len(done.stdout.encode())
    finally:
        signer.cleanup()
        if own:
            shutil.rmtree(root, ignore_errors=True)
    base = _median(startup)
    print(f'  clustercord run "/plugin list"     median {base:7.2f} s  (start-up, n={reps})')
    rows = []
    for (command, as_json), values in runs.items():
        beyond = _median(values) - base
        size = sizes[(command, as_json)] / 2**20
        flag = "--json " if as_json else ""
        shown = f"{flag}{command}"
        print(
            f"  run {shown:<54} median {_median(values):6.2f} s"
            f"  (+{beyond:.2f} s; output {size:.2f} MB)"
        )
        target = f"+ < {COMMAND_TARGET_S:g} s {'met' if beyond < COMMAND_TARGET_S else 'MISSED'}"
        if as_json:
            target += f"; < {JSON_TARGET_MB:g} MB {'met' if size < JSON_TARGET_MB else 'MISSED'}"
        rows.append(
            (
                f"rbac e2e: run {flag}{command.split(' ', 2)[1]}",
                f"{_median(values):.2f} s ({size:.2f} MB)"
                if as_json
                else f"{_median(values):.2f} s",
                f"{base:.2f} s (/plugin list)",
                f"+{beyond:.2f} s",
                target,
            )
        )
    return rows


def serve_and_run(objects: list[dict[str, Any]], reps: int) -> list[Row]:
    """:func:`end_to_end` alone: a sandbox serving ``objects``, the commands run against it."""
    from clustercord_sandbox.background import BackgroundSandbox
    from clustercord_sandbox.fixtures import load

    box = BackgroundSandbox()
    server = box.start()
    try:
        box.call(server.controllers.stop())
        server.controllers = None
        box.call(_load(load, server, objects), timeout=600)
        return end_to_end(box, reps, None)
    finally:
        box.stop()


async def _load(load: Any, server: Any, objects: list[dict[str, Any]]) -> None:
    load(server.api, objects)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="3 repetitions instead of 7")
    parser.add_argument(
        "--commands", action="store_true", help="only the commands end to end (clustercord run)"
    )
    args = parser.parse_args(argv)
    if args.commands:
        print("== RBAC: the user's commands end to end on a big cluster")
        for row in serve_and_run(generate(), 3 if args.quick else 5):
            print("  " + "  ".join(row))
        return 0
    print("== RBAC: a big cluster, audited offline; baseline SubjectAccessReviews")
    rows = bench_rbac(3 if args.quick else 7)
    for row in rows:
        print("  " + "  ".join(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
