"""Label selectors, event filters and the Reply model."""

from __future__ import annotations

import base64
import json

import pytest

from clustercord_sdk.events import Event, EventFilter, labels_match, parse_label_selector
from clustercord_sdk.reply import (
    Button,
    Card,
    Confirmation,
    Field,
    File,
    Modal,
    Progress,
    Reply,
    Select,
    SelectOption,
    Table,
    TextInput,
)

# -- label selectors -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("app=web", [("app", "=", ("web",))]),
        ("app==web", [("app", "=", ("web",))]),
        ("app != web", [("app", "!=", ("web",))]),
        ("env in (a,b)", [("env", "in", ("a", "b"))]),
        ("env in ( a , b )", [("env", "in", ("a", "b"))]),
        ("env notin (a,b)", [("env", "notin", ("a", "b"))]),
        ("env\tin\t(a)", [("env", "in", ("a",))]),
        ("gpu", [("gpu", "exists", ())]),
        ("!legacy", [("legacy", "!exists", ())]),
        ("", []),
        (
            "app=web,env in (prod, staging),tier notin (db,cache),!legacy,gpu",
            [
                ("app", "=", ("web",)),
                ("env", "in", ("prod", "staging")),
                ("tier", "notin", ("db", "cache")),
                ("legacy", "!exists", ()),
                ("gpu", "exists", ()),
            ],
        ),
    ],
)
def test_parse_label_selector(text: str, expected: list[tuple[str, str, tuple[str, ...]]]) -> None:
    assert parse_label_selector(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("env in a,b", "values must be in parentheses"),
        ("env notin a", "values must be in parentheses"),
        ("env in ()", "needs at least one value"),
        ("=web", "has an empty key"),
        ("app=web,!", "has an empty key"),
        ("!=x", "has an empty key"),
    ],
)
def test_bad_label_selectors(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match="label selector") as info:
        parse_label_selector(text)
    assert fragment in str(info.value)


LABELS = {"app": "web", "env": "prod", "gpu": ""}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", True),
        ("app=api", False),
        ("missing=x", False),
        ("app!=api", True),
        ("app!=web", False),
        ("missing!=x", True),
        ("env in (prod,staging)", True),
        ("env in (dev)", False),
        ("missing in (x)", False),
        ("env notin (dev,staging)", True),
        ("env notin (prod)", False),
        ("missing notin (x)", True),
        ("gpu", True),
        ("missing", False),
        ("!missing", True),
        ("!gpu", False),
        ("app=web,env in (prod),gpu,!legacy", True),
        ("app=web,env in (dev)", False),
        ("", True),
    ],
)
def test_labels_match(selector: str, expected: bool) -> None:
    assert labels_match(parse_label_selector(selector), LABELS) is expected


def test_event_filter_namespaces_and_labels() -> None:
    only_games = EventFilter.from_manifest({"label": "app=mc", "namespaces": ["games", "mods"]})
    assert only_games.matches(Event("pod:crash", namespace="games", labels={"app": "mc"}))
    assert only_games.matches(Event("pod:crash", namespace="mods", labels={"app": "mc"}))
    assert not only_games.matches(Event("pod:crash", namespace="default", labels={"app": "mc"}))
    assert not only_games.matches(Event("pod:crash", labels={"app": "mc"}))
    assert not only_games.matches(Event("pod:crash", namespace="games", labels={"app": "web"}))


def test_event_filter_single_namespace_and_empty_filter() -> None:
    single = EventFilter.from_manifest({"namespace": "games"})
    assert single.namespaces == frozenset({"games"})
    assert not single.matches(Event("pod:crash", namespace="other"))
    for empty in (EventFilter.from_manifest(None), EventFilter.from_manifest({})):
        assert empty.matches(Event("pod:crash"))
        assert empty.matches(Event("pod:crash", namespace="any", labels={"a": "b"}))


def test_event_filter_rejects_bad_selector() -> None:
    with pytest.raises(ValueError, match="parentheses"):
        EventFilter.from_manifest({"label": "env in prod"})


# -- Reply ---------------------------------------------------------------------------


def test_empty_reply_is_an_empty_dict() -> None:
    assert Reply().to_dict() == {}


def test_to_dict_omits_empty_parts() -> None:
    out = Reply(text="hi", cards=[Card(title="T")]).to_dict()
    assert out == {"text": "hi", "cards": [{"title": "T"}]}


def test_to_dict_keeps_flags_and_falsy_data() -> None:
    assert Reply.fail("boom", ephemeral=True).to_dict() == {
        "text": "boom",
        "ephemeral": True,
        "error": True,
    }
    # an empty result is still a result: scripts reading --json rely on "data"
    assert Reply(data=[]).to_dict() == {"data": []}
    assert Reply(data=0).to_dict() == {"data": 0}
    assert Reply(data={}).to_dict() == {"data": {}}


def test_files_carry_size_and_base64() -> None:
    payload = b"\x00\x01binary\xff"
    out = Reply(files=[File(name="a.bin", data=payload, content_type="application/octet-stream")])
    (entry,) = out.to_dict()["files"]
    assert entry["name"] == "a.bin"
    assert entry["size"] == len(payload)
    assert base64.b64decode(entry["data_base64"]) == payload
    assert entry["content_type"] == "application/octet-stream"
    assert "data" not in entry


def full_reply() -> Reply:
    return Reply(
        text="Scaled **web**",
        cards=[
            Card(
                title="web",
                description="Deployment",
                fields=[Field("Replicas", "3", inline=True), Field("Image", "nginx:1.27")],
                color="#00ff00",
                footer="prod",
                url="https://example.com",
                image="chart.png",
            )
        ],
        tables=[
            Table(columns=["Pod", "Ready", "Restarts"], rows=[["web-1", True, 0]], title="Pods"),
            Table(columns=[]),
        ],
        pages=[Reply(text="page 1"), Reply(text="page 2", cards=[Card(title="p2")])],
        buttons=[
            Button("Restart", action="restart", value={"pod": "web-1"}, style="danger"),
            Button("Docs", url="https://docs.example.com", style="link", disabled=True, emoji="📖"),
        ],
        selects=[
            Select(
                action="pick",
                options=[
                    SelectOption("One", "1", description="first", default=True),
                    SelectOption("Two", "2"),
                ],
                placeholder="Choose",
                max_values=2,
            )
        ],
        modal=Modal(
            title="Scale",
            action="scale",
            inputs=[
                TextInput("replicas", "Replicas", placeholder="3", max_length=3),
                TextInput("reason", "Why", style="paragraph", required=False, value="load"),
            ],
        ),
        files=[
            File("chart.png", b"\x89PNG\r\n", description="CPU", content_type="image/png"),
            File("empty.txt", b""),
        ],
        ephemeral=True,
        progress=Progress(current=3, total=10, label="scaling"),
        confirmation=Confirmation(
            prompt="Really?", action="confirm", value=[1, 2], confirm_label="Yes", danger=False
        ),
        data={"replicas": 3, "pods": ["web-1"]},
    )


def test_reply_round_trips_through_to_dict() -> None:
    reply = full_reply()
    assert Reply.from_dict(reply.to_dict()) == reply


def test_reply_round_trips_through_json_text() -> None:
    reply = full_reply()
    again = Reply.from_dict(json.loads(json.dumps(reply.to_dict())))
    assert again == reply
    assert isinstance(again.pages[1].cards[0], Card)
    assert isinstance(again.selects[0].options[0], SelectOption)
    assert isinstance(again.modal, Modal) and isinstance(again.modal.inputs[1], TextInput)
    assert again.files[0].data == b"\x89PNG\r\n"
    assert again.files[1].data == b""


def test_round_trip_keeps_values_that_look_empty() -> None:
    reply = Reply(buttons=[Button("x", action="a", value=[])], data=[])
    assert Reply.from_dict(reply.to_dict()) == reply


def test_from_dict_ignores_unknown_keys() -> None:
    assert Reply.from_dict(
        {"text": "hi", "future": 1, "cards": [{"title": "t", "new": 2}]}
    ) == Reply(text="hi", cards=[Card(title="t")])


@pytest.mark.parametrize(
    ("progress", "fraction"),
    [
        (Progress(5, 10), 0.5),
        (Progress(0, 10), 0.0),
        (Progress(15, 10), 1.0),
        (Progress(-3, 10), 0.0),
        (Progress(5), None),
        (Progress(5, 0), None),
    ],
)
def test_progress_fraction_clamps(progress: Progress, fraction: float | None) -> None:
    assert progress.fraction == fraction
