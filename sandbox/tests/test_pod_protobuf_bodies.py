"""Protobuf request bodies: kubectl's typed `create` commands send them and never retry in JSON.

Each case compares what the sandbox stored with what kubectl renders on the client for the
same command (`--dry-run=client -o json`): the decoded protobuf must carry every field the
JSON form has.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from clustercord_sandbox import protowire

CASES = {
    "deployment": (
        ["deployment", "{n}", "--image=nginx:1.27", "--port=80", "--replicas=2", "--", "sleep"],
        "deployment",
    ),
    "namespace": (["namespace", "{n}"], "namespace"),
    "configmap": (["configmap", "{n}", "--from-literal=a=b", "--from-literal=empty="], "cm"),
    "secret": (["secret", "generic", "{n}", "--from-literal=password=s3cr=t"], "secret"),
    "serviceaccount": (["serviceaccount", "{n}"], "sa"),
    "service": (["service", "clusterip", "{n}", "--tcp=80:8080", "--tcp=443"], "svc"),
    "job": (["job", "{n}", "--image=busybox", "--", "echo", "hi"], "job"),
    "pdb": (["pdb", "{n}", "--selector=app=x", "--min-available=50%"], "pdb"),
    "role": (["role", "{n}", "--verb=get,list", "--resource=pods", "--resource-name=a"], "role"),
    "rolebinding": (
        ["rolebinding", "{n}", "--role=r", "--user=u", "--serviceaccount=default:sa"],
        "rolebinding",
    ),
    "clusterrole": (["clusterrole", "{n}", "--verb=get", "--non-resource-url=/x"], "clusterrole"),
    "clusterrolebinding": (
        ["clusterrolebinding", "{n}", "--clusterrole=view", "--group=g"],
        "clusterrolebinding",
    ),
    "cronjob": (
        ["cronjob", "{n}", "--image=busybox", "--schedule=*/5 * * * *", "--", "echo", "hi"],
        "cronjob",
    ),
    "ingress": (
        [
            "ingress",
            "{n}",
            "--class=nginx",
            "--rule=example.com/api*=api:8080,tls=api-cert",
            "--rule=example.com/=web:http",
            "--default-backend=fallback:80",
            "--annotation=team=web",
        ],
        "ingress",
    ),
    "quota": (["quota", "{n}", "--hard=pods=10,requests.cpu=2", "--scopes=BestEffort"], "quota"),
    "priorityclass": (
        ["priorityclass", "{n}", "--value=1000", "--description=high", "--global-default=false"],
        "priorityclass",
    ),
}


def assert_carries(expected: Any, actual: Any, path: str = "") -> None:
    """Every field of `expected` is in `actual` with the same value (the server may add more)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path} is {actual!r}"
        for key, value in expected.items():
            if key in ("creationTimestamp", "status") or value in ({}, None):
                continue  # set by the server, or empty in both forms
            assert key in actual, f"{path}.{key} is missing"
            assert_carries(value, actual[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{path}: {actual!r}"
        for index, (want, got) in enumerate(zip(expected, actual, strict=True)):
            assert_carries(want, got, f"{path}[{index}]")
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


@pytest.mark.parametrize("case", sorted(CASES))
def test_create_sends_protobuf_and_the_sandbox_stores_what_kubectl_meant(kubectl, unique, case):
    args, short = CASES[case]
    args = [a.replace("{n}", unique) for a in args]
    # Flags go before a `--` that starts the container's command.
    cut = args.index("--") if "--" in args else len(args)
    dry_run = [*args[:cut], "--dry-run=client", "-o", "json", *args[cut:]]
    client_side = json.loads(kubectl("create", *dry_run).stdout)
    assert f"{unique} created" in kubectl("create", *args).stdout
    stored = json.loads(kubectl("get", short, unique, "-o", "json").stdout)
    assert_carries(client_side, stored)


def test_a_kind_without_a_schema_is_unknown_which_the_server_answers_415():
    type_meta = _field(1, b"v1") + _field(2, b"ComponentStatus")
    body = protowire.MAGIC + _field(1, type_meta) + _field(2, b"")
    with pytest.raises(protowire.UnknownKind, match="cannot decode protobuf ComponentStatus"):
        protowire.decode(body)


def _field(number: int, payload: bytes) -> bytes:
    return bytes([number << 3 | 2, len(payload)]) + payload


def test_an_eviction_with_delete_options_decodes_to_its_json_form():
    meta = _field(1, b"web-1") + _field(3, b"shop")
    options = (
        bytes([1 << 3, 0])  # gracePeriodSeconds: 0 is meaningful (a pointer)
        + _field(2, _field(1, b"uid-1"))
        + _field(5, b"All")
    )
    raw = _field(1, meta) + _field(2, options)
    type_meta = _field(1, b"policy/v1") + _field(2, b"Eviction")
    body = protowire.MAGIC + _field(1, type_meta) + _field(2, raw)
    assert protowire.decode(body) == {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": "web-1", "namespace": "shop"},
        "deleteOptions": {
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": "uid-1"},
            "dryRun": ["All"],
        },
    }


def test_a_truncated_body_is_a_bad_request_not_a_crash():
    type_meta = _field(1, b"v1") + _field(2, b"ConfigMap")
    body = protowire.MAGIC + _field(1, type_meta) + _field(2, _field(1, b"x"))[:-1]
    with pytest.raises(protowire.ProtobufError, match="truncated"):
        protowire.decode(body)
