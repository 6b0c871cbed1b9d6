"""Approval requests: decisions, expiry, the kernel's callback and persistence."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from clustercord.services.approvals import ApprovalService
from clustercord.storage import Database
from clustercord_sdk.errors import CommandError
from clustercord_sdk.services import Approval


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def decided() -> list[Approval]:
    return []


@pytest.fixture
def service(tmp_path: Path, clock: Clock, decided: list[Approval]) -> ApprovalService:
    return ApprovalService(Database(tmp_path / "cc.db"), clock=clock, on_decided=decided.append)


def ask(service: ApprovalService, plugin: str = "scale", **kwargs) -> Approval:
    return service.for_plugin(plugin).request(
        "scale",
        "scale web to 10 replicas",
        requested_by="u-alice",
        details={"replicas": 10},
        handler="scale.flow:continue_",
        **kwargs,
    )


def test_a_request_is_pending_until_approved(
    service: ApprovalService, clock: Clock, decided: list[Approval]
) -> None:
    request = ask(service)
    assert request.status == "pending"
    assert request.expires_at == clock.now + 3600
    assert [a.id for a in service.pending()] == [request.id]
    assert [a.id for a in service.for_plugin("scale").pending()] == [request.id]

    clock.now += 10
    approved = service.decide(request.id, True, by="u-admin", reason="looks fine")
    assert (approved.status, approved.decided_by, approved.decided_at, approved.reason) == (
        "approved",
        "u-admin",
        clock.now,
        "looks fine",
    )
    assert service.pending() == []
    assert decided == [approved]
    assert service.for_plugin("scale").get(request.id).status == "approved"


def test_deny(service: ApprovalService, decided: list[Approval]) -> None:
    request = ask(service)
    denied = service.decide(request.id, False, by="u-admin", reason="not during the freeze")
    assert denied.status == "denied"
    assert denied.reason == "not during the freeze"
    assert [a.status for a in decided] == ["denied"]


def test_a_second_decision_is_refused(service: ApprovalService, decided: list[Approval]) -> None:
    request = ask(service)
    service.decide(request.id, True, by="u-admin")
    with pytest.raises(CommandError, match="already approved by u-admin"):
        service.decide(request.id, False, by="u-other")
    assert service.get(request.id).status == "approved"
    assert service.get(request.id).decided_by == "u-admin"
    assert len(decided) == 1


def test_an_unknown_id_is_named(service: ApprovalService) -> None:
    with pytest.raises(CommandError, match="'nope'"):
        service.decide("nope", True, by="u-admin")


def test_expiry(service: ApprovalService, clock: Clock, decided: list[Approval]) -> None:
    request = ask(service, expires_in=60)
    keep = ask(service, expires_in=600)
    clock.now += 61
    assert [a.id for a in service.pending()] == [keep.id]
    assert service.get(request.id).status == "expired"  # reads as expired before expire() runs

    expired = service.expire()
    assert [a.id for a in expired] == [request.id]
    assert expired[0].status == "expired"
    assert [(a.id, a.status) for a in decided] == [(request.id, "expired")]
    assert service.expire() == []  # only once
    assert len(decided) == 1


def test_deciding_an_expired_request_is_refused_and_records_the_expiry(
    service: ApprovalService, clock: Clock, decided: list[Approval]
) -> None:
    request = ask(service, expires_in=60)
    clock.now += 60
    with pytest.raises(CommandError, match="expired"):
        service.decide(request.id, True, by="u-admin")
    stored = service.get(request.id)
    assert stored.status == "expired"
    assert stored.decided_by is None
    assert [a.status for a in decided] == ["expired"]


def test_requests_survive_reopening_the_database(tmp_path: Path, clock: Clock) -> None:
    request = ask(ApprovalService(Database(tmp_path / "cc.db"), clock=clock))
    decided: list[Approval] = []
    reopened = ApprovalService(Database(tmp_path / "cc.db"), clock=clock, on_decided=decided.append)
    assert reopened.get(request.id) == request
    assert reopened.get(request.id).details == {"replicas": 10}
    reopened.decide(request.id, True, by="u-admin")
    again = ApprovalService(Database(tmp_path / "cc.db"), clock=clock)
    assert again.get(request.id).status == "approved"
    assert [a.id for a in decided] == [request.id]


def test_plugins_see_only_their_own_requests(service: ApprovalService) -> None:
    request = ask(service, plugin="scale")
    other = service.for_plugin("backup")
    assert other.get(request.id) is None
    assert other.pending() == []


def test_a_failing_callback_does_not_undo_the_decision(tmp_path: Path, clock: Clock) -> None:
    def broken(approval: Approval) -> None:
        raise RuntimeError("plugin hook crashed")

    service = ApprovalService(Database(tmp_path / "cc.db"), clock=clock, on_decided=broken)
    request = ask(service)
    assert service.decide(request.id, True, by="u-admin").status == "approved"
    assert service.get(request.id).status == "approved"


def test_ids_are_short_url_safe_and_unique(service: ApprovalService) -> None:
    ids = {ask(service).id for _ in range(200)}
    assert len(ids) == 200
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{6,12}", i) for i in ids)


def test_expires_in_must_be_positive(service: ApprovalService) -> None:
    with pytest.raises(ValueError, match="expires_in"):
        ask(service, expires_in=0)
