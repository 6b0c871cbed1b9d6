"""The SSO tests' pieces: a kernel with the sso plugin and its HTTP service, the fake
Discord (OAuth included), a sandbox with a namespace the mapped group may use, the real
kubectl (the tests are skipped without one)."""

from __future__ import annotations

import asyncio
import re
import shutil
import ssl
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

ALICE, MALLORY, ROLE = "100000000000000001", "100000000000000666", "200000000000000002"

RBAC = """
apiVersion: v1
kind: Namespace
metadata: {name: dev}
---
apiVersion: v1
kind: Node
metadata: {name: nas}
---
apiVersion: v1
kind: Pod
metadata: {name: shell, namespace: dev}
spec:
  containers:
  - {name: box, image: "busybox:1.36", command: [sh, -c, "sleep infinity"]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-reader, namespace: dev}
rules:
- apiGroups: [""]
  resources: [pods, configmaps, pods/exec]
  verbs: [get, list, watch, create, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: dev-team-reads, namespace: dev}
subjects:
- {kind: Group, name: dev-team, apiGroup: rbac.authorization.k8s.io}
roleRef: {kind: Role, name: pod-reader, apiGroup: rbac.authorization.k8s.io}
"""


def requests(sso: Any) -> list[dict[str, Any]]:
    """The audit rows of the requests through the gateway (their results, not intents)."""
    return [
        r
        for r in sso.kernel.audit.iter_rows()
        if r["action"] == "route * /k8s/*" and r["result"] != "started"
    ]


class Sso:
    """The pieces of one SSO test: kernel, fake Discord, a browser, kubectl."""

    def __init__(self, harness: Any, discord: Any, cluster: Any, tmp: Path) -> None:
        self.harness, self.discord, self.cluster, self.tmp = harness, discord, cluster, tmp
        self.kernel = harness.kernel
        self.name = self.kernel.kubernetes.registry.list()[0].name
        context = ssl.create_default_context(cadata=self.kernel.http.certificate.pem)
        self.browser = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context))

    async def login(self, user: str = ALICE, **options: str) -> str:
        """``/sso login`` as ``user``: the authorize URL it answered."""
        extra = "".join(f" {k}:{v}" for k, v in options.items())
        result = await self.harness.run(f"/sso login cluster:{self.name}{extra}", user=user)
        assert result.ok, result.text
        assert result.reply.ephemeral
        return str(result.reply.data["authorize_url"])

    async def authorize(self, url: str) -> str:
        """Discord's page, approved by whoever is signed in: the callback URL it redirects to."""
        async with self.browser.get(url, allow_redirects=False) as response:
            assert response.status == 302, await response.text()
            return response.headers["Location"]

    async def callback(self, url: str) -> tuple[int, str]:
        async with self.browser.get(url) as response:
            return response.status, await response.text()

    async def kubeconfig(self, user: str = ALICE, kind: str = "static", **options: str) -> Path:
        """The whole flow: login, authorize, callback, download → a kubeconfig file (``kind``
        static: the session's token; helper: the clustercord-sso exec credential)."""
        status, page = await self.callback(await self.authorize(await self.login(user, **options)))
        assert status == 200, page
        link = re.search(rf'href="([^"]+/kubeconfig\?token=[^"]+kind={kind})"', page)
        assert link, page
        url = link.group(1).replace("&amp;", "&")
        async with self.browser.get(url) as response:
            assert response.status == 200
            text = await response.text()
        for other in (url, url.replace(f"kind={kind}", "kind=helper")):
            async with self.browser.get(other) as again:
                assert again.status == 404  # once, whichever kind
        path = self.tmp / f"kubeconfig-{time.monotonic_ns()}"
        path.write_text(text)
        return path

    async def kubectl(self, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
        """The real kubectl with ``config`` (in a thread: the gateway runs on this loop)."""
        return await asyncio.to_thread(
            subprocess.run,
            [shutil.which("kubectl") or "kubectl", "--kubeconfig", str(config), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def sessions(self) -> Any:
        return self.kernel.manager.plugins["sso"].context.store.table("sessions")


@pytest.fixture
async def sso(clustercord_harness, fake_discord, sandbox_cluster, tmp_path, monkeypatch):
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    cluster = sandbox_cluster("empty")
    cluster.apply(RBAC)
    discord = fake_discord
    monkeypatch.setenv("DISCORD_CLIENT_ID", discord.oauth.client_id)
    monkeypatch.setenv("DISCORD_CLIENT_SECRET", discord.oauth.client_secret)
    monkeypatch.setenv("CLUSTERCORD_DISCORD_OAUTH_URL", discord.oauth.authorize_url)
    monkeypatch.setenv("CLUSTERCORD_DISCORD_API_URL", discord.api_url)
    harness = clustercord_harness
    harness.add_builtins(["sso"])
    harness.settings = replace(
        harness.settings,
        http={"listen": "127.0.0.1:0"},
        plugin_config={"sso": {"guild": discord.guild_id}},
    )
    kernel = await harness.start()
    await kernel.http.start()
    discord.oauth.redirect_uris.add(f"{kernel.http.url}/plugins/sso/callback")
    discord.oauth.set_member(ALICE, [ROLE])
    discord.oauth.set_member(MALLORY, [])
    discord.oauth.login(ALICE)
    mapped = await harness.run(f"/sso map role:{ROLE} groups:dev-team")
    assert mapped.ok, mapped.text
    state = Sso(harness, discord, cluster, tmp_path)
    yield state
    await state.browser.close()
    await kernel.http.close()
