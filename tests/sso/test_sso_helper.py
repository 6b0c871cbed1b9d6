"""The clustercord-sso exec helper: a kubeconfig bound to the device that first used it,
tokens of 10 minutes, device trust, and static tokens turned off."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time

import pytest
import yaml

from clustercord_sdk.context import Invocation
from tests.sso.conftest import ALICE

pytestmark = pytest.mark.skipif(
    shutil.which("clustercord-sso") is None, reason="the clustercord-sso helper is not installed"
)


async def test_the_helper_binds_the_kubeconfig_to_its_device(sso, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "laptop"))
    config = await sso.kubeconfig(kind="helper")
    user = yaml.safe_load(config.read_text())["users"][0]["user"]
    assert user["exec"]["command"] == "clustercord-sso" and "token" not in user
    whoami = await sso.kubectl(config, "auth", "whoami", "-o", "json")
    assert whoami.returncode == 0, whoami.stderr
    assert json.loads(whoami.stdout)["status"]["userInfo"]["username"] == f"discord:{ALICE}"
    # The credential it prints: a token of at most 10 minutes, not the session's.
    args = user["exec"]["args"]
    ran = await asyncio.to_thread(  # in a thread: the HTTP service runs on this loop
        subprocess.run, ["clustercord-sso", *args], capture_output=True, text=True
    )
    assert ran.returncode == 0, ran.stderr
    printed = ran.stdout
    status = json.loads(printed)["status"]
    assert status["token"].startswith("ccsst_")
    expires = time.mktime(time.strptime(status["expirationTimestamp"], "%Y-%m-%dT%H:%M:%SZ"))
    assert expires - time.mktime(time.gmtime()) <= 600 + 5
    key = next((tmp_path / "laptop" / "clustercord-sso").glob("*.json"))
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    # The same kubeconfig copied to another machine: its enrollment is spent.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "elsewhere"))
    copied = await sso.kubectl(config, "get", "pods", "-n", "dev")
    assert copied.returncode != 0 and "enrolled on a device already" in copied.stderr
    # Revoked: the device's next token is refused.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "laptop"))
    [session] = [s["id"] for s in sso.sessions().rows]
    assert (await sso.harness.run(f"/sso revoke session:{session}")).ok
    after = await sso.kubectl(config, "get", "pods", "-n", "dev")
    assert after.returncode != 0 and "session has ended" in after.stderr


async def test_a_new_device_waits_for_an_admin(sso, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "laptop"))
    await sso.kernel.manager.set_config("sso", "device_trust", True, by="admin")
    config = await sso.kubeconfig(kind="helper")
    waiting = await sso.kubectl(config, "get", "pods", "-n", "dev")
    assert waiting.returncode != 0 and "pending" in waiting.stderr
    listed = await sso.harness.run("/sso devices")
    [device] = listed.reply.data["devices"]
    assert device["user_id"] == ALICE
    not_admin = await sso.harness.run(f"/sso devices approve:{device['id']}", user=ALICE)
    assert not not_admin.ok
    # The Approve button, pressed as on Discord: checked as /sso devices (admins only).
    approve = next(b for b in listed.reply.buttons if b.label.startswith("Approve"))

    async def send(reply):
        raise AssertionError("one reply")

    async def ask(confirmation):
        return True

    def press(user, frontend="discord"):
        invocation = Invocation(user_id=user, command=("sso", "devices"), frontend=frontend)
        return sso.kernel.door.action(
            invocation, plugin="sso", action=approve.action, value=approve.value,
            send=send, ask=ask, named_command=True,
        )  # fmt: skip

    assert (await press(ALICE)).status == "denied"
    assert (await sso.kubectl(config, "get", "pods", "-n", "dev")).returncode != 0
    pressed = await press("console", "console")  # the console's own user: an admin
    assert pressed.status == "ok", pressed.message
    assert (await sso.kubectl(config, "get", "pods", "-n", "dev")).returncode == 0
    # The same device, approved once, is trusted for the user's next sessions.
    again = await sso.kubeconfig(kind="helper")
    assert (await sso.kubectl(again, "get", "pods", "-n", "dev")).returncode == 0
    # Another machine of the same user is a new device: it waits.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "desktop"))
    other = await sso.kubeconfig(kind="helper")
    assert (await sso.kubectl(other, "get", "pods", "-n", "dev")).returncode != 0
    assert len((await sso.harness.run("/sso devices")).reply.data["devices"]) == 1


async def test_static_tokens_can_be_turned_off(sso):
    config = await sso.kubeconfig(kind="static")
    assert (await sso.kubectl(config, "get", "pods", "-n", "dev")).returncode == 0
    await sso.kernel.manager.set_config("sso", "allow_static", False, by="admin")
    refused = await sso.kubectl(config, "get", "pods", "-n", "dev")
    assert refused.returncode != 0
