"""Migrations never run data they do not know: a scope stored at a schema version above every
step of this code (written by a newer version) is refused, with what to do."""

from __future__ import annotations

import pytest

from clustercord.storage import Database, SchemaTooNew


def test_steps_run_once_in_order_and_a_newer_schema_is_refused(tmp_path):
    database = Database(tmp_path / "clustercord.db")
    ran: list[int] = []
    steps = [(2, lambda: ran.append(2)), (1, lambda: ran.append(1))]
    assert database.migrate("plugin:demo", steps) == [1, 2] and ran == [1, 2]
    assert database.migrate("plugin:demo", steps) == [] and ran == [1, 2]
    with pytest.raises(SchemaTooNew, match="schema version 2, newer than this code knows \\(1\\)"):
        database.migrate("plugin:demo", steps[1:])  # an older release of the plugin
    assert ran == [1, 2]
    database.close()
