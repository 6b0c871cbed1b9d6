"""Paged answers: the page shown, the ◀ ▶ buttons and the console's next-page line."""

from __future__ import annotations

import pytest

from clustercord_sdk.paging import Pager, clamp, command_line, page_count
from clustercord_sdk.reply import Button


@pytest.mark.parametrize(
    ("total", "size", "pages"),
    [(0, 20, 1), (1, 20, 1), (20, 20, 1), (21, 20, 2), (45, 20, 3), (100, 25, 4)],
)
def test_page_count_never_says_zero_pages(total: int, size: int, pages: int) -> None:
    assert page_count(total, size) == pages


def test_a_page_of_no_items_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one item"):
        page_count(10, 0)


@pytest.mark.parametrize(
    ("asked", "shown"),
    [(None, 1), ("", 1), (0, 1), (-4, 1), ("x", 1), (2.0, 2), ("3", 3), (3, 3), (99, 3)],
)
def test_the_page_asked_for_is_brought_within_the_pages(asked: object, shown: int) -> None:
    """A stale ▶ after the data shrank, or a typo, still answers: with the nearest page."""
    assert clamp(asked, 3) == shown
    assert Pager.clamped(asked, 3) == Pager(shown, 3)


def test_no_pages_at_all_is_one_empty_page() -> None:
    assert Pager.clamped(5, 0) == Pager(1, 1)


@pytest.mark.parametrize(("page", "pages"), [(0, 3), (4, 3), (1, 0)])
def test_a_pager_outside_its_pages_cannot_be_made(page: int, pages: int) -> None:
    with pytest.raises(ValueError, match="is not one of"):
        Pager(page, pages)


def test_the_first_page_has_next_only() -> None:
    pager = Pager.over(45, 20, None)
    assert (pager.page, pager.pages) == (1, 3)
    previous, following = pager.buttons("commands:page", {"options": {"plugin": "echo"}})
    assert previous == Button(
        "◀ Previous",
        action="commands:page",
        value={"options": {"plugin": "echo"}, "page": 0},
        disabled=True,
    )
    assert following == Button(
        "Next ▶",
        action="commands:page",
        value={"options": {"plugin": "echo"}, "page": 2},
        disabled=False,
    )
    assert pager.hint("/audit list upto:7") == "Page 1/3 · next: /audit list upto:7 page:2"
    assert pager.next_line("/audit list") == "/audit list page:2"


def test_a_middle_page_goes_both_ways_and_names_the_policy_command() -> None:
    pager = Pager.over(45, 20, 2)
    buttons = pager.buttons("commands:browse_page", {"command": "matrix"}, command="plugin browse")
    assert [(b.label, b.value, b.disabled, b.command) for b in buttons] == [
        ("◀ Previous", {"command": "matrix", "page": 1}, False, "plugin browse"),
        ("Next ▶", {"command": "matrix", "page": 3}, False, "plugin browse"),
    ]


def test_the_last_page_has_no_way_on() -> None:
    pager = Pager.over(45, 20, 7)
    assert pager.page == 3 and not pager.has_next and pager.has_previous
    previous, following = pager.buttons("commands:page", {})
    assert not previous.disabled and previous.value == {"page": 2}
    assert following.disabled and following.value == {"page": 4}
    assert pager.next_line("/audit list") is None
    assert pager.hint("/audit list") == "Page 3/3"


def test_one_page_only_has_no_buttons() -> None:
    pager = Pager.over(20, 20, 1)
    assert pager.buttons("commands:page", {"options": {}}) == []
    assert pager.hint("/rbac audit") == "Page 1/1"


def test_the_buttons_do_not_share_or_change_the_state_given() -> None:
    state = {"options": {"query": "kafka"}}
    previous, following = Pager(2, 3).buttons("commands:page", state)
    assert state == {"options": {"query": "kafka"}}
    assert previous.value is not following.value


def test_a_page_slices_its_items() -> None:
    items = list(range(45))
    assert items[Pager.over(45, 20, 1).slice(20)] == list(range(20))
    assert items[Pager.over(45, 20, 3).slice(20)] == list(range(40, 45))
    assert Pager.over(45, 20, 3).offset(20) == 40


def test_the_command_line_writes_the_options_as_typed() -> None:
    line = command_line(
        "/rbac who-can",
        {"verb": "list", "resource": "pods", "page": 4, "in_namespaces": True, "since": 0},
        exclude=("page",),
    )
    assert line == "/rbac who-can verb:list resource:pods in_namespaces:true since:0"


def test_options_left_unset_are_not_written() -> None:
    options = {"cluster": None, "namespace": "", "include_system": False, "upto": 12}
    assert command_line("/audit list", options) == "/audit list upto:12"


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("kafka", "query:kafka"),
        ("ns:pod", "query:ns:pod"),
        ("two words", 'query:"two words"'),
        ("tab\there", 'query:"tab\there"'),
        ('say "hi"', r'query:"say \"hi\""'),
        ("it's", 'query:"it\'s"'),
        ("back\\slash", r'query:"back\\slash"'),
    ],
)
def test_values_the_console_would_split_are_quoted(value: str, written: str) -> None:
    assert command_line("/plugin browse", {"query": value}) == f"/plugin browse {written}"
