"""Plugin calls to Kubernetes: declared permissions, retries, errors people understand."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from kubernetes.client.exceptions import ApiException

from clustercord.kubernetes.calls import Action, call, check_declared, explain
from clustercord_sdk.errors import CommandError, PermissionDenied
from clustercord_sdk.permissions import parse_permissions


def api_error(status, body=None, headers=None):
    error = ApiException(status=status, reason="reason")
    error.body = json.dumps(body) if body is not None else None
    error.headers = headers
    return error


def test_an_undeclared_call_fails_in_process_and_names_the_permission():
    declared = parse_permissions(["pods:read", "deployments.apps/scale:update"])
    check_declared("ops", declared, Action("list", "pods", namespace="web"))
    check_declared("ops", declared, Action("update", "deployments", "apps", "scale"))
    with pytest.raises(PermissionDenied) as refused:
        check_declared("ops", declared, Action("get", "secrets", namespace="web", name="db"))
    assert str(refused.value) == (
        "plugin ops may not get secrets 'db' in namespace web: its manifest does not "
        "declare secrets:get (declare secrets:read)"
    )
    with pytest.raises(PermissionDenied, match="pods/log:get"):
        check_declared("ops", declared, Action("get", "pods", subresource="log"))


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            403,
            {"message": 'pods is forbidden: User "x" cannot list resource "pods"'},
            "cannot list pods in namespace web: forbidden by the cluster's RBAC. "
            "It needs pods:list",
        ),
        (404, {"message": 'pods "api-0" not found'}, 'not found: pods "api-0" not found'),
        (
            409,
            {"message": "the object has been modified"},
            "conflict: the object has been modified",
        ),
        (
            422,
            {
                "message": "Pod is invalid",
                "details": {
                    "causes": [{"field": "spec.containers[0].image", "message": "Required value"}]
                },
            },
            "invalid: spec.containers[0].image: Required value",
        ),
        (401, None, "401 Unauthorized"),
    ],
)
def test_api_errors_become_messages_a_person_understands(status, body, expected):
    message = str(explain(api_error(status, body), Action("list", "pods", namespace="web")))
    assert expected in message


async def test_429_and_5xx_are_retried_with_backoff_then_succeed():
    answers = [api_error(503), api_error(429, headers={"Retry-After": "0.05"}), "pods"]

    def flaky():
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    start = time.monotonic()
    result = await call(flaky, Action("list", "pods"), backoff=0.01)
    assert result == "pods" and not answers
    assert time.monotonic() - start >= 0.05  # Retry-After was honoured


async def test_retries_give_up_with_a_message():
    def always_busy():
        raise api_error(503, {"message": "etcd is unhappy"})

    with pytest.raises(CommandError, match=r"failed to list pods \(503\): etcd is unhappy"):
        await call(always_busy, Action("list", "pods"), retries=2, backoff=0.001)


async def test_a_404_is_not_retried():
    calls = []

    def missing():
        calls.append(1)
        raise api_error(404, {"message": 'pods "x" not found'})

    with pytest.raises(CommandError, match="not found"):
        await call(missing, Action("get", "pods", name="x"))
    assert len(calls) == 1


async def test_an_unreachable_cluster_times_out_while_the_loop_keeps_serving():
    def hangs():
        time.sleep(2)

    ticks = 0

    async def other_work():
        nonlocal ticks
        for _ in range(10):
            ticks += 1
            await asyncio.sleep(0.01)

    with pytest.raises(
        CommandError, match=r"no answer within 0.2 s \(is the cluster reachable\?\)"
    ):
        await asyncio.gather(
            call(hangs, Action("get", "nodes", cluster="lab"), timeout=0.2), other_work()
        )
    assert ticks == 10


async def test_connection_refused_is_a_clear_error():
    def refused():
        raise ConnectionRefusedError(111, "Connection refused")

    with pytest.raises(CommandError, match="cannot get nodes on cluster lab: Connection refused"):
        await call(refused, Action("get", "nodes", cluster="lab"))
