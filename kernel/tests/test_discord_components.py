"""Component state in the kernel's database: survives a reopen, expires, names who may use it."""

from __future__ import annotations

from clustercord.frontends.discord.components import ComponentStore, parse_custom_id
from clustercord.storage import Database


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_state_survives_reopening_the_database(tmp_path):
    path = tmp_path / "clustercord.db"
    database = Database(path)
    custom_id = ComponentStore(database).minter("cluster", invoker="7", command=("pod", "delete"))
    custom_id = custom_id.mint("confirm", {"value": {"pod": "web-1"}}, allowed=["7"])
    database.close()

    component = ComponentStore(Database(path)).get(custom_id)
    assert component is not None
    assert (component.plugin, component.kind, component.command) == (
        "cluster",
        "confirm",
        ("pod", "delete"),
    )
    assert component.state == {"value": {"pod": "web-1"}}
    assert component.may_use("7") and not component.may_use("8")


def test_custom_ids_are_namespaced_short_and_unguessable(tmp_path):
    store = ComponentStore(Database(tmp_path / "db"))
    ids = {store.save("a" * 32, "button", {}) for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) <= 100 and parse_custom_id(i)[0] == "a" * 32 for i in ids)
    assert parse_custom_id("lightbulb:menu:1") is None
    assert store.get("cc:a:forged") is None


def test_components_expire_and_can_be_ended_early(tmp_path):
    clock = Clock()
    store = ComponentStore(Database(tmp_path / "db"), ttl=60, clock=clock)
    custom_id = store.save("demo", "button", {"action": "m:f"})
    assert not store.get(custom_id).expired(clock.now + 59)
    assert store.get(custom_id).expired(clock.now + 60)

    answered = store.save("demo", "confirm", {})
    store.expire(answered)
    assert store.get(answered).expired(clock.now)


def test_old_rows_are_purged_a_day_after_expiry(tmp_path):
    clock = Clock()
    store = ComponentStore(Database(tmp_path / "db"), ttl=60, clock=clock)
    old = store.save("demo", "button", {})
    clock.now += 60 + 86400 + 3600
    store.save("demo", "button", {})
    assert store.get(old) is None
