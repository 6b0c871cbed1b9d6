"""The ``next:`` line a paged answer shows (``/audit list``, ``/plugin browse``, ``/rbac
who-can``/``matrix``/``audit``) is typed back into the console as is: whatever the option
values hold (spaces, quotes, backslashes, colons), the console reads the same options."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from clustercord.frontends.commandline import parse_command_line
from clustercord_sdk.paging import Pager, command_line

NAMES = st.from_regex(r"[a-z][a-z_]{0,11}", fullmatch=True)
VALUES = st.one_of(
    st.text(min_size=1, max_size=30),
    st.integers(min_value=-5, max_value=10**6),
    st.just(True),
)


@given(st.dictionaries(NAMES, VALUES, max_size=6))
def test_the_next_page_line_reads_back_as_the_same_options(options: dict) -> None:
    options.pop("page", None)
    line = Pager(1, 3).next_line(command_line("/rbac who-can", options))
    assert line is not None
    path, parsed = parse_command_line(line)
    assert path == ("rbac", "who-can")
    expected = {k: "true" if v is True else str(v) for k, v in options.items()}
    assert parsed == {**expected, "page": "2"}


def test_a_value_with_quotes_and_a_backslash_survives() -> None:
    line = command_line("/plugin browse", {"query": 'say "hi" \\ there', "category": "ops"})
    assert parse_command_line(f"{line} page:2") == (
        ("plugin", "browse"),
        {"query": 'say "hi" \\ there', "category": "ops", "page": "2"},
    )
