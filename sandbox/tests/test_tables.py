"""Server-side printing with the real kubectl: the columns `kubectl get` shows are the server's.

The expected headers and cells are those of kube-apiserver 1.32 (`pkg/printers/internalversion`
for PodDisruptionBudgets) and of the apiextensions server (CRDs with the default convertor,
custom resources with their CRD's `additionalPrinterColumns`).
"""

from __future__ import annotations

import json
import re
import time

import pytest

from .conftest import sandbox_with_nodes
from .test_pod_eviction import BUDGET, ready_deployment

sandbox = pytest.fixture(scope="module", name="sandbox")(sandbox_with_nodes)

CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: {plural}.{group}}}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: {plural}, singular: {singular}, kind: {kind}}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
    additionalPrinterColumns: {columns}
"""

COLUMNS = """
    - {name: Color, type: string, jsonPath: .spec.color}
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}
    - {name: Owner, type: string, jsonPath: '.metadata.labels.example\\.com/owner', priority: 1}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
"""

GADGET = """\
apiVersion: {group}/v1
kind: Gadget
metadata: {{name: {name}, labels: {{example.com/owner: ana}}}}
spec: {{color: red, size: 3}}
status:
  conditions: [{{type: Synced, status: "False"}}, {{type: Ready, status: "True"}}]
"""


def table(text: str) -> list[list[str]]:
    """kubectl's output as cells, cut where the header's columns start (a cell may be empty)."""
    lines = text.rstrip().splitlines()
    starts = [m.start() for m in re.finditer(r"(?:^|(?<=\s\s))\S", lines[0])]
    bounds = list(zip(starts, [*starts[1:], None], strict=True))
    return [[line[a:b].strip() for a, b in bounds] for line in lines]


def age_like(cell: str) -> bool:
    return re.fullmatch(r"\d+[smhdy](\d+[smh])?", cell) is not None


def test_pdb_columns_are_the_printers(kubectl, unique):
    ready_deployment(kubectl, unique, "web", replicas=3)
    kubectl(
        "apply",
        "-f",
        "-",
        input=BUDGET.format(name="web", namespace=unique, rule="minAvailable: 2"),
    )
    pct = BUDGET.format(name="web", namespace=unique, rule='maxUnavailable: "50%"')
    kubectl("apply", "-f", "-", input=pct.replace("name: web,", "name: half,", 1))
    deadline = time.monotonic() + 10
    while True:  # the disruption controller fills status.disruptionsAllowed in the background
        rows = table(kubectl("get", "pdb", "-n", unique).stdout)
        if (rows[1:] and all(row[3] != "0" for row in rows[1:])) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert rows[0] == ["NAME", "MIN AVAILABLE", "MAX UNAVAILABLE", "ALLOWED DISRUPTIONS", "AGE"]
    by_name = {row[0]: row[1:] for row in rows[1:]}
    assert by_name["web"][:3] == ["2", "N/A", "1"]  # 3 healthy pods, 2 must stay
    assert by_name["half"][:3] == ["N/A", "50%", "2"]  # 50% of 3 rounds up: 2 may go
    assert age_like(by_name["web"][3])


def test_crds_print_name_and_created_at(kubectl, unique):
    group = f"{unique}.example.com"
    crd = CRD.format(group=group, plural="things", singular="thing", kind="Thing", columns="[]")
    kubectl("apply", "-f", "-", input=crd)
    rows = table(kubectl("get", "crd", f"things.{group}").stdout)
    created = json.loads(kubectl("get", "crd", f"things.{group}", "-o", "json").stdout)
    assert rows == [
        ["NAME", "CREATED AT"],
        [f"things.{group}", created["metadata"]["creationTimestamp"]],
    ]


def test_custom_resources_print_their_crds_columns(kubectl, unique):
    group = f"{unique}.example.com"
    crd = CRD.format(
        group=group, plural="gadgets", singular="gadget", kind="Gadget", columns=COLUMNS
    )
    kubectl("apply", "-f", "-", input=crd)
    kubectl("apply", "-f", "-", input=GADGET.format(group=group, name="g1"))
    bare = GADGET.format(group=group, name="g2").split("spec:")[0]  # no spec, no status
    kubectl("apply", "-f", "-", input=bare)

    rows = table(kubectl("get", f"gadgets.{group}").stdout)
    assert rows[0] == ["NAME", "COLOR", "SIZE", "READY", "AGE"]  # OWNER is priority 1
    assert rows[1][:4] == ["g1", "red", "3", "True"] and age_like(rows[1][4])
    assert rows[2][:4] == ["g2", "", "", ""]  # no value: an empty cell, as kubectl prints None

    wide = table(kubectl("get", f"gadgets.{group}", "-o", "wide").stdout)
    assert wide[0] == ["NAME", "COLOR", "SIZE", "READY", "OWNER", "AGE"]  # the CRD's order
    assert wide[1][4] == "ana"


def test_custom_resources_without_columns_print_name_and_age(kubectl, unique):
    group = f"{unique}.example.com"
    crd = CRD.format(group=group, plural="things", singular="thing", kind="Thing", columns="[]")
    kubectl("apply", "-f", "-", input=crd)
    thing = f"apiVersion: {group}/v1\nkind: Thing\nmetadata: {{name: t1}}\n"
    kubectl("apply", "-f", "-", input=thing)
    rows = table(kubectl("get", f"things.{group}").stdout)
    assert rows[0] == ["NAME", "AGE"]
    assert rows[1][0] == "t1" and age_like(rows[1][1])
