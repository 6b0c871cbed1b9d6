"""Cluster SSO end to end: /sso login, Discord's OAuth page (the fake's), the callback on the
kernel's HTTP service, the one-time kubeconfig, and the real kubectl against the sandbox
through the SSO gateway: allowed within the mapped rights, refused after revoke and after
expiry; replayed states and codes, and another Discord account, refused."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import time

from tests.sso.conftest import ALICE, MALLORY, ROLE, requests


async def test_kubectl_works_within_the_mapped_rights_and_stops_at_revoke(sso):
    config = await sso.kubeconfig()
    whoami = await sso.kubectl(config, "auth", "whoami", "-o", "json")
    assert whoami.returncode == 0, whoami.stderr
    info = json.loads(whoami.stdout)["status"]["userInfo"]
    assert info["username"] == f"discord:{ALICE}"
    assert "dev-team" in info["groups"]
    made = await sso.kubectl(config, "create", "configmap", "hello", "-n", "dev")
    assert made.returncode == 0, made.stderr
    listed = await sso.kubectl(config, "get", "configmaps", "-n", "dev", "-o", "name")
    assert "configmap/hello" in listed.stdout
    # A namespace the mapping does not reach: the API server refuses discord:<id>.
    other = await sso.kubectl(config, "get", "pods", "-n", "default")
    assert other.returncode != 0
    assert f'User "discord:{ALICE}" cannot list resource "pods"' in other.stderr
    # Headers a client sends to be someone else are stripped: still discord:<id>.
    posing = await sso.kubectl(
        config,
        "auth",
        "whoami",
        "-o",
        "json",
        "--as",
        "system:admin",
        "--as-group",
        "system:masters",
    )
    assert json.loads(posing.stdout)["status"]["userInfo"]["username"] == f"discord:{ALICE}"
    forbidden = await sso.kubectl(config, "get", "secrets", "-A", "--as", "system:admin")
    assert forbidden.returncode != 0
    # Every request is audited with the Discord user.
    rows = requests(sso)
    assert rows and all(r["actor"] == f"discord:{ALICE}" for r in rows)
    assert all(r["options"]["remote"] == "127.0.0.1" for r in rows)
    assert any(r["options"]["details"]["path"] == "/api/v1/namespaces/dev/configmaps" for r in rows)
    assert {r["options"]["details"]["verb"] for r in rows} >= {"GET", "POST"}
    # Revoked: the next kubectl call is refused, at once.
    [session] = [s["id"] for s in sso.sessions().rows]
    revoked = await sso.harness.run(f"/sso revoke session:{session}")
    assert revoked.ok, revoked.text
    start = time.monotonic()
    after = await sso.kubectl(config, "get", "configmaps", "-n", "dev")
    assert after.returncode != 0
    assert "Unauthorized" in after.stderr or "logged in" in after.stderr
    assert time.monotonic() - start < 2.0


async def test_an_expired_session_is_refused(sso):
    config = await sso.kubeconfig()
    assert (await sso.kubectl(config, "get", "pods", "-n", "dev")).returncode == 0
    [row] = list(sso.sessions().rows)
    sso.sessions().update(row["id"], {"expires": time.time() - 1})
    expired = await sso.kubectl(config, "get", "pods", "-n", "dev")
    assert expired.returncode != 0
    assert "Unauthorized" in expired.stderr or "logged in" in expired.stderr


async def test_a_state_or_code_is_used_once(sso):
    callback = await sso.authorize(await sso.login())
    assert (await sso.callback(callback))[0] == 200
    status, page = await sso.callback(callback)  # the same state (and code) again
    assert status == 400 and "unknown, used or expired" in page
    # A fresh state with the first login's (used) code: Discord refuses the code.
    code = re.search(r"code=([^&]+)", callback).group(1)
    fresh = await sso.authorize(await sso.login())
    replayed = re.sub(r"code=[^&]+", f"code={code}", fresh)
    status, page = await sso.callback(replayed)
    assert status == 403 and "refused the sign-in code" in page
    forged = re.sub(r"state=[^&]+", "state=forged", fresh)
    assert (await sso.callback(forged))[0] == 400
    assert len(list(sso.sessions().rows)) == 1


async def test_another_discord_account_than_the_asker_is_refused(sso):
    url = await sso.login(ALICE)
    sso.discord.oauth.login(MALLORY)  # the link reached someone else's browser
    status, page = await sso.callback(await sso.authorize(url))
    assert status == 403 and "another account" in page
    assert list(sso.sessions().rows) == []


async def test_no_mapped_role_and_required_mfa_are_refused(sso):
    url = await sso.login(MALLORY)
    sso.discord.oauth.login(MALLORY)
    status, page = await sso.callback(await sso.authorize(url))
    assert status == 403 and "None of your Discord roles" in page
    sso.discord.oauth.login(ALICE, mfa=False)
    await sso.kernel.manager.set_config("sso", "require_mfa", True, by="admin")
    status, page = await sso.callback(await sso.authorize(await sso.login()))
    assert status == 403 and "two-factor" in page
    sso.discord.oauth.login(ALICE, mfa=True)
    status, _ = await sso.callback(await sso.authorize(await sso.login()))
    assert status == 200


async def test_max_sessions_revokes_the_oldest(sso):
    await sso.kernel.manager.set_config("sso", "max_sessions", 2, by="admin")
    configs = [await sso.kubeconfig() for _ in range(3)]
    assert (await sso.kubectl(configs[0], "get", "pods", "-n", "dev")).returncode != 0
    for config in configs[1:]:
        assert (await sso.kubectl(config, "get", "pods", "-n", "dev")).returncode == 0
    listed = await sso.harness.run("/sso list-sessions", user=ALICE)
    assert len(listed.reply.data["sessions"]) == 2


async def test_logout_and_who_may_revoke(sso):
    config = await sso.kubeconfig()
    [session] = [s["id"] for s in sso.sessions().rows]
    other = await sso.harness.run(f"/sso revoke session:{session}", user=MALLORY)
    assert not other.ok and "owner or an admin" in other.text
    assert (await sso.kubectl(config, "get", "pods", "-n", "dev")).returncode == 0
    out = await sso.harness.run(f"/sso logout cluster:{sso.name}", user=ALICE)
    assert out.ok and out.reply.data["revoked"] == [session]
    assert (await sso.kubectl(config, "get", "pods", "-n", "dev")).returncode != 0


async def test_an_address_outside_allow_ips_is_refused(sso):
    config = await sso.kubeconfig()
    await sso.kernel.manager.set_config("sso", "allow_ips", "10.0.0.0/8", by="admin")
    refused = await sso.kubectl(config, "get", "pods", "-n", "dev")
    assert refused.returncode != 0 and "Forbidden" in refused.stderr
    last = requests(sso)[-1]
    assert last["result"] == "denied" and last["options"]["details"]["status"] == 403
    await sso.kernel.manager.set_config("sso", "allow_ips", "127.0.0.0/8", by="admin")
    assert (await sso.kubectl(config, "get", "pods", "-n", "dev")).returncode == 0


async def test_extend_and_list_give_the_session_as_data(sso):
    await sso.kubeconfig()
    [row] = list(sso.sessions().rows)
    extended = await sso.harness.run(f"/sso extend session:{row['id']} duration:20h", user=ALICE)
    assert extended.ok, extended.text
    session = extended.reply.data["session"]
    assert session["id"] == row["id"] and session["mode"] == "gateway"
    assert session["cluster"] == sso.name
    assert abs(session["expires"] - (time.time() + 20 * 3600)) < 60
    too_long = await sso.harness.run(f"/sso extend session:{row['id']} duration:48h", user=ALICE)
    assert not too_long.ok and "24h" in too_long.text
    # Others see none of it; admins see everyone's.
    other = await sso.harness.run("/sso list-sessions", user=MALLORY)
    assert other.reply.data["sessions"] == []
    spying = await sso.harness.run(f"/sso list-sessions user:{ALICE}", user=MALLORY)
    assert not spying.ok
    admin = await sso.harness.run("/sso list-sessions")
    assert [s["id"] for s in admin.reply.data["sessions"]] == [row["id"]]


async def test_only_admins_map_roles_and_never_to_system_groups(sso):
    refused = await sso.harness.run(f"/sso map role:{ROLE} groups:admins", user=MALLORY)
    assert not refused.ok
    masters = await sso.harness.run(f"/sso map role:{ROLE} groups:system:masters")
    assert not masters.ok and "system:" in masters.text
    mapped = await sso.harness.run("/sso mappings")
    assert mapped.reply.data == {ROLE: ["dev-team"]}


async def _line(stream: asyncio.StreamReader, needle: str, timeout: float = 10) -> str:
    """The first line of ``stream`` containing ``needle`` (within ``timeout`` seconds)."""

    async def read() -> str:
        while True:
            line = (await stream.readline()).decode()
            if not line:
                raise AssertionError(f"the stream ended before {needle!r}")
            if needle in line:
                return line

    return await asyncio.wait_for(read(), timeout)


async def test_a_watch_is_relayed_and_ends_when_the_session_is_revoked(sso):
    config = await sso.kubeconfig()
    assert (await sso.kubectl(config, "create", "configmap", "first", "-n", "dev")).returncode == 0
    watch = await asyncio.create_subprocess_exec(
        shutil.which("kubectl") or "kubectl",
        "--kubeconfig",
        str(config),
        "get",
        "configmaps",
        "-n",
        "dev",
        "-w",
        "--output-watch-events",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert watch.stdout is not None
        await _line(watch.stdout, "first")
        # An event after the watch began reaches kubectl as it happens.
        made = await asyncio.to_thread(
            sso.cluster.kubectl, "create", "configmap", "second", "-n", "dev"
        )
        assert made.returncode == 0
        await _line(watch.stdout, "second", timeout=5)
        [session] = [s["id"] for s in sso.sessions().rows]
        revoked = await sso.harness.run(f"/sso revoke session:{session}")
        assert revoked.ok
        start = time.monotonic()
        await asyncio.wait_for(watch.wait(), 10)
        assert time.monotonic() - start < 2.0
    finally:
        if watch.returncode is None:
            watch.kill()
            await watch.wait()


async def test_leaving_the_server_or_losing_the_role_revokes_at_the_recheck(sso, monkeypatch):
    monkeypatch.setenv("DISCORD_TOKEN", sso.discord.bot_token)
    staying, leaving = await sso.kubeconfig(), await sso.kubeconfig()
    first, second = [s["id"] for s in sso.sessions().rows]
    [job] = [
        j for j in sso.kernel.scheduler.for_plugin("sso").jobs() if j.id == "sso-recheck-members"
    ]
    await sso.kernel.run_job(job)  # nothing changed: nothing revoked
    assert (await sso.kubectl(staying, "get", "pods", "-n", "dev")).returncode == 0
    sso.discord.oauth.set_member(ALICE, ["999"])  # the mapped role is gone
    await sso.kernel.run_job(job)
    for config in (staying, leaving):
        assert (await sso.kubectl(config, "get", "pods", "-n", "dev")).returncode != 0
    rows = [r for r in sso.kernel.audit.iter_rows() if r["action"] == "sso:revoke"]
    assert {r["options"]["session"] for r in rows} == {first, second}
    assert all(r["options"]["why"] == "lost a mapped role" for r in rows)
    # With the bot's token, the login itself reads the roles as the bot sees them.
    url = await sso.login()
    status, page = await sso.callback(await sso.authorize(url))
    assert status == 403 and "None of your Discord roles" in page


async def test_a_member_who_left_is_revoked(sso, monkeypatch):
    monkeypatch.setenv("DISCORD_TOKEN", sso.discord.bot_token)
    config = await sso.kubeconfig()
    sso.discord.oauth.remove_member(ALICE)
    [job] = [
        j for j in sso.kernel.scheduler.for_plugin("sso").jobs() if j.id == "sso-recheck-members"
    ]
    await sso.kernel.run_job(job)
    assert (await sso.kubectl(config, "get", "pods", "-n", "dev")).returncode != 0
    [row] = [r for r in sso.kernel.audit.iter_rows() if r["action"] == "sso:revoke"]
    assert row["options"]["why"] == "left the server"


async def test_sso_audit_shows_the_requests_and_only_ones_own(sso):
    config = await sso.kubeconfig()
    assert (await sso.kubectl(config, "get", "pods", "-n", "dev")).returncode == 0
    mine = await sso.harness.run("/sso audit since:1h", user=ALICE)
    assert mine.ok, mine.text
    paths = [r["details"]["path"] for r in mine.reply.data["requests"]]
    assert "/api/v1/namespaces/dev/pods" in paths
    assert all(r["actor"] == f"discord:{ALICE}" for r in mine.reply.data["requests"])
    nothing = await sso.harness.run("/sso audit", user=MALLORY)
    assert nothing.ok and nothing.reply.data is None
    spying = await sso.harness.run(f"/sso audit user:{ALICE}", user=MALLORY)
    assert not spying.ok


async def test_an_expired_session_ends_an_open_watch_and_idle_sessions_end(sso):
    config = await sso.kubeconfig()
    watch = await asyncio.create_subprocess_exec(
        shutil.which("kubectl") or "kubectl",
        "--kubeconfig",
        str(config),
        "get",
        "pods",
        "-n",
        "dev",
        "-w",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await asyncio.sleep(1.0)
        assert watch.returncode is None
        [row] = list(sso.sessions().rows)
        sso.sessions().update(row["id"], {"expires": time.time() - 1})
        await asyncio.wait_for(watch.wait(), 5)
    finally:
        if watch.returncode is None:
            watch.kill()
            await watch.wait()
    fresh = await sso.kubeconfig()
    await sso.kernel.manager.set_config("sso", "idle_timeout", "1m", by="admin")
    assert (await sso.kubectl(fresh, "get", "pods", "-n", "dev")).returncode == 0
    newest = max(sso.sessions().rows, key=lambda r: r["created"])
    sso.sessions().update(newest["id"], {"last_used": time.time() - 120})
    assert (await sso.kubectl(fresh, "get", "pods", "-n", "dev")).returncode != 0
    assert sso.sessions().get(newest["id"])["revoked_by"] == "sso:idle"


async def test_kubectl_exec_through_the_gateway_and_revoke_ends_the_shell(sso):
    config = await sso.kubeconfig()
    await asyncio.to_thread(sso.cluster.wait_running, "shell", "dev", 30)
    once = await sso.kubectl(
        config, "exec", "-n", "dev", "shell", "--", "sh", "-c", "echo hi; id -un"
    )
    assert once.returncode == 0, once.stderr
    assert once.stdout.startswith("hi\n")
    execs = [r for r in requests(sso) if r["options"]["details"]["path"].endswith("/exec")]
    assert execs and execs[-1]["options"]["details"]["status"] == 101  # a WebSocket, bridged
    shell = await asyncio.create_subprocess_exec(
        shutil.which("kubectl") or "kubectl",
        "--kubeconfig",
        str(config),
        "exec",
        "-i",
        "-n",
        "dev",
        "shell",
        "--",
        "cat",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert shell.stdin is not None and shell.stdout is not None
        shell.stdin.write(b"echoed\n")
        await shell.stdin.drain()
        assert await asyncio.wait_for(shell.stdout.readline(), 10) == b"echoed\n"
        [session] = [s["id"] for s in sso.sessions().rows]
        assert (await sso.harness.run(f"/sso revoke session:{session}")).ok
        start = time.monotonic()
        await asyncio.wait_for(shell.wait(), 10)
        assert time.monotonic() - start < 2.0
    finally:
        if shell.returncode is None:
            shell.kill()
            await shell.wait()
    denied = await sso.kubectl(config, "exec", "-n", "dev", "shell", "--", "true")
    assert denied.returncode != 0


async def test_a_login_from_discord_also_goes_by_dm(sso):
    result = await sso.harness.run(f"/sso login cluster:{sso.name}", user=ALICE, frontend="discord")
    assert result.ok and result.reply.ephemeral
    [dm] = [n for n in sso.kernel.notifier.pending() if n["user"] == ALICE]
    assert result.reply.data["authorize_url"] in json.dumps(dm["reply"])
    # From the console, no DM.
    await sso.login()
    assert len([n for n in sso.kernel.notifier.pending() if n["user"] == ALICE]) == 1


async def test_many_open_watches_do_not_starve_other_requests(sso):
    """Open watches hold no worker thread: with 12 of them open (more than the default
    thread pool of a 2-core machine), a plain kubectl request still answers at once."""
    config = await sso.kubeconfig()
    watches = [
        await asyncio.create_subprocess_exec(
            shutil.which("kubectl") or "kubectl", "--kubeconfig", str(config),
            "get", "configmaps", "-n", "dev", "-w",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        for _ in range(12)
    ]  # fmt: skip
    try:

        def opened() -> int:
            return len([r for r in requests(sso) if "watch" in r["options"]["details"]["query"]])

        deadline = time.monotonic() + 30
        while opened() < 12 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert opened() >= 12
        assert all(w.returncode is None for w in watches)
        start = time.monotonic()
        plain = await sso.kubectl(config, "get", "pods", "-n", "dev")
        assert plain.returncode == 0, plain.stderr
        assert time.monotonic() - start < 10
    finally:
        for watch in watches:
            if watch.returncode is None:
                watch.kill()
        await asyncio.gather(*(w.wait() for w in watches))


async def test_the_address_check_comes_before_the_token_check(sso):
    config = await sso.kubeconfig()
    await sso.kernel.manager.set_config("sso", "allow_ips", "10.0.0.0/8", by="admin")
    # From outside the allowlist, a forged token and a real one get the same answer.
    text = config.read_text()
    forged = config.with_name("forged")
    forged.write_text(re.sub(r"token: ccsso_\S+", "token: ccsso_000000000000_nothing", text))
    for path in (config, forged):
        refused = await sso.kubectl(path, "get", "pods", "-n", "dev")
        assert "Forbidden" in refused.stderr
    assert {r["result"] for r in requests(sso)} == {"denied"}


async def test_auto_refresh_moves_the_end_of_a_session_in_use(sso):
    config = await sso.kubeconfig()
    [row] = list(sso.sessions().rows)
    sso.sessions().update(row["id"], {"expires": time.time() + 60})
    assert (await sso.kubectl(config, "get", "pods", "-n", "dev")).returncode == 0
    assert sso.sessions().get(row["id"])["expires"] < time.time() + 120  # off: unchanged
    await sso.kernel.manager.set_config("sso", "auto_refresh", True, by="admin")
    assert (await sso.kubectl(config, "get", "pods", "-n", "dev")).returncode == 0
    assert sso.sessions().get(row["id"])["expires"] > time.time() + 3500
    # Never past 24 h after the sign-in.
    signed_in = time.time() - 24 * 3600 + 120
    sso.sessions().update(row["id"], {"created": signed_in, "expires": time.time() + 60})
    assert (await sso.kubectl(config, "get", "pods", "-n", "dev")).returncode == 0
    assert abs(sso.sessions().get(row["id"])["expires"] - (signed_in + 24 * 3600)) < 1


async def test_sso_config_shows_and_changes_the_settings_admins_only(sso):
    config = await sso.kubeconfig()
    shown = await sso.harness.run("/sso config")
    assert shown.ok and shown.reply.data["settings"]["max_sessions"] == 3
    denied = await sso.harness.run("/sso config allow_ips:10.0.0.0/8", user=ALICE)
    assert not denied.ok
    # A typo changes nothing (it must not lock everyone out, nor let everyone in).
    for bad, why in (("allow_ips:10.0.0.0/8,not-a-net", "not an address"),
                     ("max_sessions:0", "between 1 and 20")):  # fmt: skip
        wrong = await sso.harness.run(f"/sso config {bad} require_mfa:true")
        assert not wrong.ok and why in wrong.text, wrong.text
    assert sso.kernel.manager.plugins["sso"].config.get("require_mfa") is False
    assert (await sso.kubectl(config, "get", "pods", "-n", "dev")).returncode == 0
    changed = await sso.harness.run("/sso config allow_ips:10.0.0.0/8 max_sessions:5")
    assert changed.ok, changed.text
    assert changed.reply.data["changed"] == ["allow_ips", "max_sessions"]
    refused = await sso.kubectl(config, "get", "pods", "-n", "dev")
    assert refused.returncode != 0 and "not allowed" in refused.stderr
    assert (await sso.harness.run("/sso config allow_ips:none")).ok
    assert (await sso.kubectl(config, "get", "pods", "-n", "dev")).returncode == 0
    [row] = [r for r in sso.kernel.audit.iter_rows() if r["action"] == "sso:config"][:1]
    assert row["options"]["allow_ips"] == "10.0.0.0/8"
