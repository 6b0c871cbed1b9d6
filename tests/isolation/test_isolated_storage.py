"""``ctx.store.table(name)`` and ``storage_migrations`` for an isolated plugin: each table
operation is a request the kernel serves on ``<plugin>__<name>`` only; migrations run in the
plugin's process against that proxied store, the kernel recording each version."""

from __future__ import annotations

import asyncio
import json

import pytest

from clustercord.instance import DirectoryLock
from clustercord.isolation.host import MIGRATIONS_LOCK
from clustercord.storage import Database

from .conftest import commands

LEDGER = {
    "manifest": commands("book", "escape"),
    "init": """
        @hookimpl
        def storage_migrations(ctx):
            def v1(store):
                store.table("entries").create(
                    {"id": int, "who": str, "amount": int}, pk="id", if_not_exists=True
                )
                store.set("v1 runs", store.get("v1 runs", 0) + 1)

            def v2(store):
                store.table("entries").add_column("note", str)
                store.table("entries").create_index(["who"], if_not_exists=True)

            return [(2, v2), (1, v1)]
    """,
    "modules": {
        "commands": """
            import json

            def book(ctx):
                t = ctx.store.table("entries")
                t.insert({"id": 1, "who": "ann", "amount": 5})
                t.insert_all([
                    {"id": 2, "who": "bob", "amount": 7},
                    {"id": 3, "who": "ann", "amount": 1, "note": "tip"},
                ])
                t.upsert({"id": 2, "who": "bob", "amount": 8}, pk="id")
                t.update(3, {"amount": 2})
                seen = {
                    "name": t.name,
                    "exists": t.exists(),
                    "columns": sorted(t.columns_dict),
                    "got": t.get(2),
                    "ann": t.rows_where("who = ?", ["ann"], order_by="id", select="id, amount"),
                    "count": t.count,
                    "count_ann": t.count_where("who = :w", {"w": "ann"}),
                    "limited": [r["id"] for r in t.rows_where(order_by="id desc", limit=1)],
                }
                t.delete(1)
                t.delete_where("amount > ?", [7])
                seen["left"] = [r["id"] for r in t.rows]
                seen["sum"] = ctx.store.query("SELECT sum(amount) AS s FROM entries")[0]["s"]
                try:
                    t.get(99)
                except Exception as exc:
                    seen["missing"] = type(exc).__name__
                return json.dumps(seen)

            def escape(ctx):
                t = ctx.store.table("entries")
                tries = {
                    "bad name": lambda: ctx.store.table("../x").count,
                    "select another table": lambda: t.rows_where(
                        select="(SELECT group_concat(name) FROM _plugins) AS n"
                    ),
                    "where on another table": lambda: t.rows_where(
                        "id IN (SELECT rowid FROM _kv)"
                    ),
                    "delete through a subquery": lambda: t.delete_where(
                        "id IN (SELECT rowid FROM _kv)"
                    ),
                    "delete another table": lambda: t.delete_where("1; DELETE FROM _kv"),
                    "sql conversions": lambda: t.insert(
                        {"id": 9, "who": "x"}, conversions={"who": "upper(?)"}
                    ),
                    "query another plugin": lambda: ctx.store.query(
                        "SELECT * FROM vault__secrets"
                    ),
                }
                seen = {}
                for name, attempt in tries.items():
                    try:
                        attempt()
                        seen[name] = "allowed"
                    except Exception as exc:
                        seen[name] = f"{type(exc).__name__}: {exc}"
                # Its own name space: "vault__secrets" is ledger__vault__secrets, empty.
                seen["prefixed"] = ctx.store.table("vault__secrets").count
                return json.dumps(seen)
        """
    },
}

VAULT = {
    "init": """
        @hookimpl
        def on_enable(ctx):
            ctx.store.table("secrets").insert({"id": 1, "value": "hunter2"}, pk="id", replace=True)
    """,
}


def version(kernel, plugin: str) -> int | None:
    row = kernel.database.conn.execute(
        "SELECT version FROM _migrations WHERE scope = ?", (f"plugin:{plugin}",)
    ).fetchone()
    return row[0] if row else None


async def test_tables_and_migrations_through_the_kernel(
    clustercord_harness, isolated_plugin, make_plugin
):
    isolated_plugin("ledger", **LEDGER)
    clustercord_harness.add_plugin(make_plugin("vault", **VAULT))
    kernel = await clustercord_harness.start()
    plugin = clustercord_harness.plugin("ledger")
    assert plugin.state == "enabled", plugin.reason
    assert version(kernel, "ledger") == 2
    assert plugin.context.store.get("v1 runs") == 1
    columns = kernel.database.db["ledger__entries"].columns_dict
    assert set(columns) == {"id", "who", "amount", "note"}

    ran = await clustercord_harness.run("/book")
    assert ran.ok, ran.text
    seen = json.loads(ran.text)
    assert seen == {
        "name": "ledger__entries",
        "exists": True,
        "columns": ["amount", "id", "note", "who"],
        "got": {"id": 2, "who": "bob", "amount": 8, "note": None},
        "ann": [{"id": 1, "amount": 5}, {"id": 3, "amount": 2}],
        "count": 3,
        "count_ann": 2,
        "limited": [3],
        "left": [3],
        "sum": 2,
        "missing": "NotFoundError",
    }
    # The rows are the kernel's, in the plugin's own table.
    assert list(kernel.database.db["ledger__entries"].rows) == [
        {"id": 3, "who": "ann", "amount": 2, "note": "tip"}
    ]

    # Migrations ran once: a restart finds version 2 recorded and runs nothing again.
    kernel = await clustercord_harness.restart()
    assert clustercord_harness.plugin("ledger").state == "enabled"
    assert clustercord_harness.plugin("ledger").context.store.get("v1 runs") == 1


async def test_migrations_wait_for_another_kernel_and_skip_what_it_ran(
    clustercord_harness, isolated_plugin
):
    """Two kernels starting on one data directory: the steps run in the plugin's process,
    outside any transaction of the kernel's, so the second waits for the migrations lock
    the first holds, then finds the versions recorded and runs nothing again (v2 twice is
    "duplicate column name: note", and the plugin would stay disabled)."""
    isolated_plugin("ledger", **LEDGER)
    data = clustercord_harness.settings.data_dir
    other_kernel = DirectoryLock(data, MIGRATIONS_LOCK, exclusive=True, purpose="migrating")
    starting = asyncio.create_task(clustercord_harness.start())
    await asyncio.wait({starting}, timeout=3)  # long enough to migrate, were it not waiting
    assert not starting.done(), "migrated without waiting for the other kernel"
    # Meanwhile the other kernel ran both steps and recorded them.
    other = Database(clustercord_harness.settings.database_path)
    other.db["ledger__entries"].create({"id": int, "who": str, "amount": int, "note": str}, pk="id")
    other.migrate("plugin:ledger", [(1, lambda: None), (2, lambda: None)])
    other.close()
    other_kernel.release()
    kernel = await asyncio.wait_for(starting, 60)
    plugin = clustercord_harness.plugin("ledger")
    assert plugin.state == "enabled", plugin.reason
    assert version(kernel, "ledger") == 2
    assert plugin.context.store.get("v1 runs") is None  # not run here: the other kernel did


async def test_a_plugin_reaches_no_table_but_its_own(
    clustercord_harness, isolated_plugin, make_plugin
):
    isolated_plugin("ledger", **LEDGER)
    clustercord_harness.add_plugin(make_plugin("vault", **VAULT))
    kernel = await clustercord_harness.start()
    kv_before = kernel.database.conn.execute("SELECT count(*) FROM _kv").fetchone()[0]
    ran = await clustercord_harness.run("/escape")
    assert ran.ok, ran.text
    seen = json.loads(ran.text)
    assert seen.pop("prefixed") == 0
    assert [k for k, v in seen.items() if v == "allowed"] == [], seen
    assert "letters, digits and _ only" in seen["bad name"]
    for name in ("select another table", "where on another table", "query another plugin"):
        assert "prohibited" in seen[name] or "not authorized" in seen[name], seen[name]
    assert "prohibited" in seen["delete through a subquery"], seen
    assert "unsupported arguments conversions" in seen["sql conversions"]
    assert kernel.database.conn.execute("SELECT count(*) FROM _kv").fetchone()[0] == kv_before
    assert kernel.database.db["vault__secrets"].count == 1
    assert clustercord_harness.plugin("ledger").state == "enabled"  # answers, not failures


BROKEN = {
    "manifest": commands("noop"),
    "init": """
        @hookimpl
        def storage_migrations(ctx):
            def v1(store):
                store.table("things").create({"id": int}, pk="id", if_not_exists=True)

            def v2(store):
                raise RuntimeError("v2 cannot run")

            return [(1, v1), (2, v2)]

        @hookimpl
        def on_enable(ctx):
            ctx.store.set("enabled", True)
    """,
    "modules": {"commands": "def noop(ctx):\n    return 'noop'\n"},
}


async def test_a_failed_migration_leaves_the_plugin_disabled_saying_why(
    clustercord_harness, isolated_plugin
):
    isolated_plugin("broken", **BROKEN)
    kernel = await clustercord_harness.start()
    plugin = clustercord_harness.plugin("broken")
    assert plugin.state == "disabled"
    assert plugin.reason.startswith("storage migration failed: RuntimeError: v2 cannot run")
    assert version(kernel, "broken") == 1  # the step that succeeded is recorded
    assert kernel.database.db["broken__things"].exists()
    assert plugin.context is None or plugin.context.store.get("enabled") is None
    assert kernel.isolation.process("broken") is None


SEALING = {
    "manifest": commands("seal"),
    "modules": {
        "commands": """
            def seal(ctx):
                sealer = ctx.plugin.sealer
                if sealer is None:
                    return "no sealer"
                token = sealer.seal(b"hunter2")
                return f"{sealer.open(token).decode()} {b'hunter2' not in token}"
        """
    },
}


async def test_the_sealer_is_the_kernel_s_with_the_plugin_s_key(
    clustercord_harness, isolated_plugin
):
    isolated_plugin("sealing", **SEALING)
    kernel = await clustercord_harness.start()
    if getattr(clustercord_harness.plugin("sealing").context, "sealer", None) is None:
        pytest.skip("this kernel gives plugins no sealer")
    assert (await clustercord_harness.run("/seal")).text == "hunter2 True"
    assert kernel.isolation.process("sealing") is not None
