"""``/sso login`` as data: what exists when it answers (the pending login: id, expiry, URL)
under ``data.login``, for a script; the session made from it carries the same id, so the
script can follow it through ``/sso list-sessions``. Through the harness and the real
``clustercord run --json``."""

from __future__ import annotations

import json
import re
import time
from urllib.parse import parse_qs, urlsplit

from tests.sso.conftest import ALICE, MALLORY
from tests.test_cli import run, site  # noqa: F401  (the fixture)


def check_pending(login: dict, cluster: str, mode: str = "gateway") -> str:
    """The pending login's fields; returns its state (from the URL)."""
    assert re.fullmatch(r"[0-9a-f]{12}", login["id"]), login
    assert login["cluster"] == cluster and login["mode"] == mode
    assert abs(login["expires"] - (time.time() + 600)) < 30
    query = parse_qs(urlsplit(login["url"]).query)
    [state] = query["state"]
    # The id names the login; it is not the state (the asker's secret) nor part of the URL.
    assert login["id"] not in login["url"] and login["id"] not in state
    return state


async def test_login_data_names_the_pending_login_and_its_session(sso):
    result = await sso.harness.run(f"/sso login cluster:{sso.name} duration:2h", user=ALICE)
    assert result.ok, result.text
    login = result.reply.data["login"]
    check_pending(login, sso.name)
    assert login["url"] == result.reply.data["authorize_url"]
    assert login["duration"] == 2 * 3600
    other = (await sso.harness.run(f"/sso login cluster:{sso.name}", user=ALICE)).reply.data
    assert other["login"]["id"] != login["id"]  # each login its own
    # Not signed in yet: nothing to follow.
    listed = await sso.harness.run("/sso list-sessions", user=ALICE)
    assert listed.reply.data["sessions"] == []
    # Signed in: the session names the login it came from.
    status, page = await sso.callback(await sso.authorize(login["url"]))
    assert status == 200, page
    [session] = (await sso.harness.run("/sso list-sessions", user=ALICE)).reply.data["sessions"]
    assert session["login"] == login["id"]
    assert abs(session["expires"] - (time.time() + 2 * 3600)) < 60
    # Someone else's login is not theirs to follow: they see no session.
    assert (await sso.harness.run("/sso list-sessions", user=MALLORY)).reply.data["sessions"] == []


def test_run_json_prints_the_pending_login(site, sandbox_cluster, tmp_path):  # noqa: F811
    env, _ = site
    cluster = sandbox_cluster("empty")
    config = tmp_path / "clustercord.toml"
    config.write_text('[plugins.sso]\nguild = "300000000000000003"\n')
    env = {
        **env,
        "KUBECONFIG": str(cluster.kubeconfig),
        "CLUSTERCORD_CONFIG": str(config),
        "CLUSTERCORD_HTTP_PUBLIC_URL": "https://cc.example.org:8443",
        "DISCORD_CLIENT_ID": "123456789012345678",
        "DISCORD_CLIENT_SECRET": "not-used-by-login",
    }
    clusters = json.loads(run(env, "run", "--json", "/cluster list").stdout)
    name = clusters["data"]["clusters"][0]["name"]
    out = run(env, "run", "--json", f"/sso login cluster:{name} mode:token")
    data = json.loads(out.stdout)["data"]
    check_pending(data["login"], name, mode="token")
    assert data["login"]["url"].startswith("https://discord.com/oauth2/authorize?")
    redirect = parse_qs(urlsplit(data["login"]["url"]).query)["redirect_uri"]
    assert redirect == ["https://cc.example.org:8443/plugins/sso/callback"]
    # A bad request prints an error and no login.
    bad = run(env, "run", "--json", "/sso login cluster:nowhere", check=False)
    assert bad.returncode != 0
    assert "login" not in (json.loads(bad.stdout).get("data") or {})
    assert "cluster 'nowhere' is unknown" in bad.stdout
