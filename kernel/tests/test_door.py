"""The door's pieces alone: the one argument rule, replies, audit names, and the guard's
budgets (a command's is not a hook's)."""

from __future__ import annotations

import asyncio
import time

import pytest

from clustercord.door import as_reply, audit_action, declared_arguments
from clustercord.plugins.guard import Budget, Guard
from clustercord_sdk.errors import CommandError, UsageError
from clustercord_sdk.reply import Reply


def test_a_handler_gets_only_the_arguments_it_declares():
    def action(ctx, value):
        return ctx, value

    function, kwargs = declared_arguments(action, {"ctx": 1, "value": 2, "fields": 3})
    assert function is action and kwargs == {"ctx": 1, "value": 2}

    def job(job):
        return job

    assert declared_arguments(job, {"job": "j", "ctx": "c"})[1] == {"job": "j"}


def test_a_command_handler_gets_ctx_first_whatever_it_calls_it():
    def handler(context):
        return context

    function, kwargs = declared_arguments(handler, {"ctx": "the ctx"}, positional="ctx")
    assert function(**kwargs) == "the ctx"
    function, kwargs = declared_arguments(lambda ctx: ctx, {"ctx": "c"}, positional="ctx")
    assert kwargs == {"ctx": "c"} and function(**kwargs) == "c"


def test_replies_and_audit_names():
    assert as_reply(None).text == "Done."
    assert as_reply("hi") == Reply(text="hi")
    with pytest.raises(CommandError, match="returned int"):
        as_reply(3)
    assert audit_action("command", "pod list") == "pod list"
    assert audit_action("action", "actions:go") == "component actions:go"
    assert audit_action("form", "actions:named") == "form actions:named"
    assert audit_action("job", "jobs:tick") == "job jobs:tick"


async def test_a_command_budget_has_no_limit_and_its_failures_do_not_count():
    guard = Guard(timeout=0.1)
    command = Budget(unlimited=True, counts=False, in_thread=True)

    async def slowish():
        await asyncio.sleep(0.3)
        return "done"

    assert (await guard.acall("p", "cmd", slowish, {}, command)).value == "done"
    assert not (await guard.acall("p", "hook", slowish, {})).ok  # the hook budget: 0.1 s

    def broken():
        raise ValueError("bug")

    result = await guard.acall("p", "cmd", broken, {}, command)
    assert not result.ok and isinstance(result.error, ValueError)
    assert guard.failures["p"] == 1  # only the hook's timeout counted


async def test_a_blocking_function_in_a_thread_is_interrupted_by_the_watchdog():
    guard = Guard(timeout=5)
    budget = Budget(timeout=0.3, in_thread=True)

    def spin():
        for _ in range(1000):
            time.sleep(0.01)

    start = time.monotonic()
    result = await guard.acall("p", "action", spin, {}, budget)
    assert time.monotonic() - start < 2
    assert not result.ok and "did not return within 0.3 s" in str(result.error)
    assert guard.failures["p"] == 1


async def test_a_usage_error_is_an_answer_not_a_failure():
    guard = Guard()
    budget = Budget(answers=(UsageError,), in_thread=True)

    def refuse():
        raise UsageError("say which pod")

    result = await guard.acall("p", "cmd", refuse, {}, budget)
    assert result.answered and not result.ok and str(result.error) == "say which pod"
    assert guard.failures.get("p", 0) == 0
