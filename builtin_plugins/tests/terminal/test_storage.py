"""Recordings in the plugin's store: whole and compressed, listed, completed, searched,
deleted, expired by the most specific retention rule, and every view logged."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap

import pytest

from clustercord_builtins.terminal.recording import Recording
from clustercord_builtins.terminal.storage import DAY, Match, Recordings
from clustercord_testing.stores import PluginStores

from .conftest import NOW, Clock, recorder


def recording(
    id: str, *, started: float = NOW, steps: list[tuple[str, str]] = (), **where: str
) -> Recording:
    """A session of ``(command, output)`` steps, recorded as the plugin records one, a
    second a step; ``where`` replaces the recorder's user, cluster, namespace or pod."""
    rec = recorder(id=id, clock=Clock(step=1.0), wall=lambda: started, **where)
    for command, output in steps:
        rec.input(command + "\n")
        rec.output(output.encode())
    return rec.finish(0)


class Ticking:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        self.now += 1
        return self.now


def test_a_saved_recording_comes_back_whole(store):
    recordings = Recordings(store)
    rec = recording("aaaa1111", steps=[("ls", "a  b\n"), ("env", "PGPASSWORD=hunter2x\n")])
    summary = recordings.save(rec)
    assert recordings.get("aaaa1111") == rec
    assert recordings.summary("aaaa1111") == summary
    assert (summary.commands_count, summary.redactions, summary.exit_code) == (2, 1, 0)
    assert summary.command == ["sh"] and summary.container == "api"
    blob = store.query("SELECT data FROM recordings WHERE id = 'aaaa1111'")[0]["data"]
    assert summary.size == len(blob) and blob[:4] == b"\x28\xb5\x2f\xfd"  # Zstandard
    assert recordings.get("nope") is None and recordings.summary("nope") is None


def test_a_lone_surrogate_typed_in_a_chat_is_recorded_stored_and_found(store):
    # A chat's JSON can carry "\ud800" alone; UTF-8 cannot: nothing on the way may fail.
    recordings = Recordings(store)
    rec = recorder(id="surr0001")
    rec.input("echo caf\ud800 \\\ud83d password=Zq8x\ud800W3vLp9RtY2\n")
    rec.output("caf\ud800 ok\r\n".encode("utf-8", "surrogatepass"))  # bytes: replaced
    recording = rec.finish(0)
    recordings.save(recording)
    back = recordings.get("surr0001")
    assert back == recording
    assert "echo caf\ud800 \\\ud83d password=************" in back.commands[0]
    assert [m.session for m in recordings.search("caf\ud800")] == ["surr0001"]


def test_saving_again_replaces(store):
    recordings = Recordings(store)
    recordings.save(recording("aaaa1111", steps=[("ls", "one\n")]))
    recordings.save(recording("aaaa1111", steps=[("ls", "one\n"), ("pwd", "/\n")]))
    assert store.query("SELECT count(*) AS n FROM recordings")[0]["n"] == 1
    assert recordings.get("aaaa1111").commands == ["ls", "pwd"]


def test_listing_is_newest_first_and_filtered(store):
    recordings = Recordings(store)
    for n, (user, cluster, namespace) in enumerate(
        [("1", "prod", "shop"), ("2", "prod", "db"), ("1", "dev", "shop"), ("1", "prod", "db")]
    ):
        recordings.save(
            recording(f"id{n}", user=user, cluster=cluster, namespace=namespace, started=NOW + n)
        )
    assert [s.id for s in recordings.list()] == ["id3", "id2", "id1", "id0"]
    assert [s.id for s in recordings.list(user="1")] == ["id3", "id2", "id0"]
    assert [s.id for s in recordings.list(user="1", cluster="prod")] == ["id3", "id0"]
    assert [s.id for s in recordings.list(namespace="db")] == ["id3", "id1"]
    assert [s.id for s in recordings.list(limit=2)] == ["id3", "id2"]


def test_completion_matches_an_id_prefix_or_a_pod_name(store):
    recordings = Recordings(store)
    recordings.save(recording("k7q2abcd", pod="checkout-5d9f", started=NOW))
    recordings.save(recording("zz4q2xyz", pod="api-k7q2", started=NOW + 1))
    recordings.save(recording("k7mmmmmm", pod="web-1", user="2", started=NOW + 2))
    assert [s.id for s in recordings.ids("k7")] == ["k7mmmmmm", "zz4q2xyz", "k7q2abcd"]
    assert [s.id for s in recordings.ids("K7Q2")] == ["zz4q2xyz", "k7q2abcd"]
    assert [s.id for s in recordings.ids("checkout")] == ["k7q2abcd"]
    assert [s.id for s in recordings.ids("k7", user="2")] == ["k7mmmmmm"]
    assert len(recordings.ids()) == 3 and recordings.ids("%") == []


def test_search_finds_commands_and_output_in_any_case_across_sessions(store):
    recordings = Recordings(store)
    coloured = "\x1b[32mSELECT\x1b[0m * FROM users;\n 42\n"
    recordings.save(
        recording("old", steps=[("ls", "x\n"), ("psql -c 'select count(*)'", coloured)])
    )
    recordings.save(
        recording("new", user="2", started=NOW + 10, steps=[("cat q.sql", "select * from t\n")])
    )
    found = recordings.search("Select * FROM")
    assert [(m.session, m.text, m.command_index) for m in found] == [
        ("new", "select * from t", 0),
        ("old", "SELECT * FROM users;", 1),
    ]
    assert found[1].time == recordings.get("old").command_times()[1] + 1
    assert [m.session for m in recordings.search("select", session="old")] == ["old", "old"]
    assert [m.text for m in recordings.search("select", user="2")] == ["select * from t"]
    assert recordings.search("PSQL") == [
        Match("old", recordings.get("old").command_times()[1], "$ psql -c 'select count(*)'", 1)
    ]
    assert len(recordings.search("e", limit=3)) == 3
    assert recordings.search("   ") == []


def test_search_never_finds_a_masked_secret(store):
    recordings = Recordings(store)
    recordings.save(recording("s1", steps=[("env", "DB_PASSWORD=hunter2x\n")]))
    assert recordings.search("hunter2x") == []
    assert [m.text for m in recordings.search("DB_PASSWORD")] == ["DB_PASSWORD=************"]


def test_delete(store):
    recordings = Recordings(store)
    recordings.save(recording("gone"))
    assert recordings.delete("gone") is True
    assert recordings.get("gone") is None and recordings.delete("gone") is False


# -- retention ---------------------------------------------------------------------------------
@pytest.mark.parametrize("days", [0, 3651, -1, True, 1.5])
def test_retention_days_must_be_1_to_3650(store, days):
    with pytest.raises(ValueError, match="1 to 3650"):
        Recordings(store).set_retention(days, by="1")


def test_the_most_specific_retention_rule_wins(store):
    recordings = Recordings(store)
    recordings.set_retention(30, by="admin")
    recordings.set_retention(90, cluster="prod", by="admin")
    recordings.set_retention(365, namespace="compliance", by="admin")
    ages = {
        "prod-compliance-200d": ("prod", "compliance", 200),  # 365 (namespace over cluster)
        "prod-shop-100d": ("prod", "shop", 100),  # 90, expired
        "prod-shop-80d": ("prod", "shop", 80),  # 90
        "dev-shop-40d": ("dev", "shop", 40),  # 30, expired
        "dev-shop-20d": ("dev", "shop", 20),  # 30
        "dev-compliance-400d": ("dev", "compliance", 400),  # 365, expired
    }
    for id, (cluster, namespace, days) in ages.items():
        recordings.save(
            recording(id, cluster=cluster, namespace=namespace, started=NOW - days * DAY)
        )
    assert recordings.expire(now=NOW) == 3
    assert {s.id for s in recordings.list()} == {
        "prod-compliance-200d",
        "prod-shop-80d",
        "dev-shop-20d",
    }
    recordings.set_retention(7, cluster="prod", namespace="compliance", by="admin")
    assert recordings.expire(now=NOW) == 1
    assert recordings.summary("prod-compliance-200d") is None


def test_rules_are_listed_most_specific_first_and_replace_their_scope(store):
    recordings = Recordings(store, clock=Ticking())
    recordings.set_retention(30, by="a")
    recordings.set_retention(90, cluster="prod", by="a")
    recordings.set_retention(120, cluster="prod", by="b")  # replaces
    recordings.set_retention(365, namespace="compliance", by="a")
    recordings.set_retention(7, cluster="prod", namespace="tmp", by="a")
    rules = recordings.retention()
    assert [(r["cluster"], r["namespace"], r["days"], r["by"]) for r in rules] == [
        ("prod", "tmp", 7, "a"),
        (None, "compliance", 365, "a"),
        ("prod", None, 120, "b"),
        (None, None, 30, "a"),
    ]
    assert recordings.clear_retention(cluster="prod") is True
    assert recordings.clear_retention(cluster="prod") is False
    assert len(recordings.retention()) == 3


def test_without_a_rule_the_default_applies_or_nothing_expires(store):
    recordings = Recordings(store)
    recordings.save(recording("old", started=NOW - 50 * DAY))
    assert recordings.expire(now=NOW) == 0
    assert recordings.expire(now=NOW, default_days=60) == 0
    assert recordings.expire(now=NOW, default_days=45) == 1


# -- who viewed what -----------------------------------------------------------------------------
def test_every_view_is_logged_and_outlives_the_recording(store):
    recordings = Recordings(store, clock=Ticking())
    recordings.save(recording("seen"))
    recordings.record_view("seen", "1001", "playback")
    recordings.record_view("seen", "1003", "export json")
    recordings.record_view("other", "1003", "download")
    recordings.delete("seen")
    assert recordings.views("seen") == [
        {"session": "seen", "user": "1001", "action": "playback", "at": NOW + 1},
        {"session": "seen", "user": "1003", "action": "export json", "at": NOW + 2},
    ]


# -- durability and size ------------------------------------------------------------------------
def test_a_saved_recording_survives_the_process_being_killed(tmp_path):
    code = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from clustercord_builtins.terminal.recording import Recording
        from clustercord_builtins.terminal.storage import Recordings
        from clustercord_testing.stores import PluginStores
        recordings = Recordings(PluginStores(Path({str(tmp_path)!r})).store("terminal"))
        events = [(0.5, "o", "hello\\n"), (1.0, "x", "0")]
        rec = Recording("kill0001", "1", "c", "n", "p", None, ["sh"], 1.0, 80, 24, events)
        recordings.save(rec)
        os.kill(os.getpid(), signal.SIGKILL)  # no close, no cleanup
        """
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == -signal.SIGKILL, run.stderr
    stores = PluginStores(tmp_path)
    try:
        rec = Recordings(stores.store("terminal")).get("kill0001")
        assert rec is not None and rec.events == [(0.5, "o", "hello\n"), (1.0, "x", "0")]
    finally:
        stores.close()


def _noisy_session(size: int) -> tuple[Recording, int]:
    """``kubectl logs -f`` of a busy web service, in 4 KiB frames: health probes and static
    files answer the same size each time, API calls vary, every latency differs."""
    rng = random.Random(3)
    ips = [f"10.244.{rng.randrange(4)}.{rng.randrange(2, 250)}" for _ in range(30)]
    sizes = {"/healthz": 2, "/static/app.js": 48213, "/static/app.css": 9120, "/": 612}
    paths = [*sizes, "/api/v1/items", "/api/v1/items/42", "/login"]
    agents = ["kube-probe/1.29", "Mozilla/5.0 (X11; Linux x86_64)", "curl/8.5.0", "Go-http-client"]
    lines, total, second = [], 0, 0
    while total < size:
        second += rng.random() < 0.3
        stamp = f"15/Jan/2024:{10 + second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}"
        path = rng.choice(paths)
        status = rng.choice([200, 200, 200, 200, 304, 404, 500])
        body = sizes.get(path) or rng.randrange(200, 9000)
        line = (
            f'{rng.choice(ips)} - - [{stamp} +0000] "GET {path} HTTP/1.1" {status} {body} '
            f'"-" "{rng.choice(agents)}" rt={rng.random():.3f}\r\n'
        )
        if rng.random() < 0.01:
            line += "W0115 10:00:00.000000 1 reflector.go:533] watch closed; retrying\r\n"
        lines.append(line)
        total += len(line)
    raw = "".join(lines).encode()
    ticks = iter(range(10**6))
    rec = recorder(id="noisy", clock=lambda: next(ticks) / 100)
    rec.input("kubectl logs -f deploy/web\n")
    for at in range(0, len(raw), 4096):
        rec.output(raw[at : at + 4096])
    return rec.finish(0), len(raw)


def test_a_noisy_session_is_stored_at_least_10_times_smaller(store):
    rec, raw = _noisy_session(2 * 2**20)
    summary = Recordings(store).save(rec)
    ratio = raw / summary.size
    print(f"stored {raw} bytes of output in {summary.size} bytes: {ratio:.1f}x smaller")
    assert ratio >= 10
    assert Recordings(store).get("noisy") == rec


def test_a_large_recording_is_packed_faster_and_still_kept_and_read_whole(store):
    # From LARGE bytes on, Zstandard's fastest level: a quarter of the CPU, a little larger.
    from clustercord_builtins.terminal import storage

    rec, raw = _noisy_session(storage.LARGE + 2**20)
    summary = Recordings(store).save(rec)
    blob = store.query("SELECT data FROM recordings WHERE id = 'noisy'")[0]["data"]
    assert Recordings(store).get("noisy") == rec  # read as any other
    assert raw / summary.size >= 8  # the 2 MB one above: 10x at level 6
    assert summary.size > len(storage.pack(rec, level=storage.ZSTD_LEVEL))
    assert storage.unpack(blob, store.sealer) == storage.unpack(
        storage.pack(rec, level=storage.ZSTD_LEVEL), None
    )


def test_input_recording_follows_the_most_specific_rule(store):
    recordings = Recordings(store)
    assert recordings.records_input("prod", "shop", default=True) is True  # no rule
    recordings.set_input_recording(False, cluster="prod", by="9")
    recordings.set_input_recording(True, cluster="prod", namespace="shop", by="9")
    assert recordings.records_input("prod", "shop", default=True) is True
    assert recordings.records_input("prod", "media", default=True) is False
    assert recordings.records_input("dev", "media", default=True) is True
    recordings.set_input_recording(False, namespace="media", by="9")
    assert recordings.records_input("dev", "media", default=True) is False
    recordings.set_input_recording(True, namespace="media", by="9")  # replaces, not adds
    assert [(r["cluster"], r["namespace"], r["record"]) for r in recordings.input_rules()] == [
        ("prod", "shop", True),
        (None, "media", True),
        ("prod", None, False),
    ]
    with pytest.raises(ValueError, match="true or false"):
        recordings.set_input_recording("no", by="9")


def _listing(rng: random.Random, size: int) -> bytes:
    """``kubectl get pods -A`` of a big cluster: names that do not repeat within it."""
    rows = ["NAMESPACE   NAME   READY   STATUS   RESTARTS   AGE\r\n"]
    while sum(map(len, rows)) < size:
        name = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(10))
        rows.append(
            f"ns-{rng.randrange(90)}   web-{name}   1/1   Running   0   {rng.randrange(90)}d\r\n"
        )
    return "".join(rows).encode()


@pytest.mark.parametrize("between", [3 * 2**20, 9 * 2**20], ids=["3MB", "9MB-fastest-level"])
def test_output_printed_again_long_after_is_stored_once(between):
    """The spec's deduplication of repeated output: a 300 KB listing printed again after
    3 MB of logs (further back than Zstandard's own window at this level), or after 9 MB
    (packed at the fastest level, whose window is shorter still), costs next to nothing the
    second time."""
    from clustercord_builtins.terminal import storage

    listing = _listing(random.Random(5), 300_000)
    logs, _ = _noisy_session(between)
    output = "".join(text for _, code, text in logs.events if code == "o").encode()

    def stored(*outputs: bytes) -> int:
        rec = recorder(id="again", clock=Ticking())
        for each in outputs:
            for at in range(0, len(each), 32768):
                rec.output(each[at : at + 32768])
        return len(storage.pack(rec.finish(0)))

    alone = stored(listing)
    once, twice = stored(listing, output), stored(listing, output, listing)
    print(f"listing {alone} bytes stored; printed again after {between}: +{twice - once} bytes")
    assert twice - once < alone / 50
