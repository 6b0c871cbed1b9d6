"""The fake Discord's REST side, spoken to with plain aiohttp (the hikari tests are in
tests/discord_fake/)."""

from __future__ import annotations

import json
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from clustercord_testing.fake_discord import FakeDiscord

pytest_plugins = ["pytester"]


@pytest.fixture
async def http(fake_discord: FakeDiscord) -> AsyncIterator[aiohttp.ClientSession]:
    headers = {"Authorization": f"Bot {fake_discord.bot_token}"}
    async with aiohttp.ClientSession(fake_discord.api_url + "/", headers=headers) as session:
        yield session


async def call(
    http: aiohttp.ClientSession, method: str, path: str, body: Any = None, **kwargs: Any
) -> tuple[int, Any, dict[str, str]]:
    async with http.request(method, path.lstrip("/"), json=body, **kwargs) as response:
        raw = await response.read()
        return response.status, json.loads(raw) if raw else None, dict(response.headers)


def commands_path(discord: FakeDiscord) -> str:
    return f"applications/{discord.application_id}/guilds/{discord.guild_id}/commands"


async def test_the_application_object_names_the_public_key(
    fake_discord: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    status, app, _ = await call(http, "GET", "oauth2/applications/@me")
    assert status == 200
    assert app["verify_key"] == fake_discord.public_key_hex
    assert app["id"] == fake_discord.application_id == app["bot"]["id"]
    assert {"approximate_guild_count", "approximate_user_install_count", "owner", "flags"} <= set(
        app
    )


async def test_a_command_set_breaking_a_rule_is_refused_whole(
    fake_discord: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    good = {"name": "pod", "description": "Pods", "type": 1}
    status, created, _ = await call(http, "PUT", commands_path(fake_discord), [good])
    assert status == 200 and created[0]["version"] and created[0]["application_id"]
    status, body, _ = await call(
        http, "PUT", commands_path(fake_discord), [good, {"name": "Bad", "description": "x"}]
    )
    assert status == 400
    assert body["errors"] == {
        "1": {
            "name": {
                "_errors": [
                    {
                        "code": "APPLICATION_COMMAND_INVALID_NAME",
                        "message": "Command name is invalid",
                    }
                ]
            }
        }
    }
    assert fake_discord.commands(fake_discord.guild_id) == created  # unchanged
    assert len(fake_discord.violations) == 1
    fake_discord.violations.clear()


async def test_a_re_registered_command_keeps_its_id(
    fake_discord: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    command = {"name": "pod", "description": "Pods"}
    _, first, _ = await call(http, "PUT", commands_path(fake_discord), [command])
    _, second, _ = await call(
        http, "PUT", commands_path(fake_discord), [{**command, "description": "All pods"}]
    )
    assert second[0]["id"] == first[0]["id"] and second[0]["version"] != first[0]["version"]


async def test_an_empty_message_is_refused_like_discord(
    fake_discord: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    status, body, _ = await call(
        http, "POST", f"channels/{fake_discord.channel_id}/messages", {"content": " "}
    )
    assert (status, body) == (400, {"message": "Cannot send an empty message", "code": 50006})
    fake_discord.violations.clear()


async def test_files_arrive_as_attachments(
    fake_discord: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    form = aiohttp.FormData()
    form.add_field(
        "payload_json",
        json.dumps({"attachments": [{"id": 0, "filename": "pods.txt"}]}),
        content_type="application/json",
    )
    form.add_field("files[0]", b"jellyfin Running\n", filename="pods.txt")
    async with http.post(f"channels/{fake_discord.channel_id}/messages", data=form) as response:
        assert response.status == 200
        message = await response.json()
    [attachment] = message["attachments"]
    assert (attachment["filename"], attachment["size"]) == ("pods.txt", 17)
    async with http.get(attachment["url"]) as download:
        assert await download.read() == b"jellyfin Running\n"
    assert fake_discord.requests[0].files[0].data == b"jellyfin Running\n"


async def test_an_edit_keeps_what_it_does_not_name_and_may_not_empty(
    fake_discord: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    path = f"channels/{fake_discord.channel_id}/messages"
    _, message, _ = await call(http, "POST", path, {"content": "one", "embeds": [{"title": "t"}]})
    status, edited, _ = await call(http, "PATCH", f"{path}/{message['id']}", {"content": "two"})
    assert status == 200 and edited["embeds"][0]["title"] == "t" and edited["edited_timestamp"]
    status, _, _ = await call(
        http, "PATCH", f"{path}/{message['id']}", {"content": "", "embeds": []}
    )
    assert status == 400
    assert fake_discord.channel_messages(fake_discord.channel_id)[0]["content"] == "two"
    fake_discord.violations.clear()


async def test_a_dm_channel_is_opened_once_per_user(
    fake_discord: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    _, first, _ = await call(http, "POST", "users/@me/channels", {"recipient_id": "9"})
    _, second, _ = await call(http, "POST", "users/@me/channels", {"recipient_id": "9"})
    assert first == second and first["type"] == 1 and first["recipients"][0]["id"] == "9"
    await call(http, "POST", f"channels/{first['id']}/messages", {"content": "hi"})
    assert [m["content"] for m in fake_discord.dm_messages("9")] == ["hi"]


async def test_a_thread_carries_messages_both_ways(
    fake_discord: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    status, thread, _ = await call(
        http,
        "POST",
        f"channels/{fake_discord.channel_id}/threads",
        {"name": "terminal", "type": 11},
    )
    assert status == 201 and thread["parent_id"] == fake_discord.channel_id
    await call(http, "POST", f"channels/{thread['id']}/messages", {"content": "$ "})
    await fake_discord.post_user_message(thread["id"], "kubectl get pods", user_id="5")
    _, history, _ = await call(http, "GET", f"channels/{thread['id']}/messages")
    assert [m["content"] for m in history] == ["kubectl get pods", "$ "]  # newest first
    status, _, _ = await call(
        http, "POST", f"channels/{fake_discord.channel_id}/threads", {"name": "x" * 101}
    )
    assert status == 400
    fake_discord.violations.clear()


async def test_a_wrong_token_and_an_unknown_endpoint_are_violations(
    fake_discord: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    status, _, _ = await call(http, "GET", "users/@me", headers={"Authorization": "Bot nope"})
    assert status == 401
    status, body, _ = await call(http, "GET", "guilds/1/emojis")
    assert (status, body) == (404, {"message": "404: Not Found", "code": 0})
    assert fake_discord.violations == [
        "GET /users/@me: missing or wrong bot token in Authorization",
        "GET /guilds/1/emojis: the fake Discord has no such endpoint",
    ]
    fake_discord.violations.clear()


async def test_injected_failures_look_like_discords(
    fake_discord: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    fake_discord.fail_next(r"^/users/@me$", status=429, retry_after=0.25)
    fake_discord.fail_next(r"^/users/@me$", status=503)
    status, body, headers = await call(http, "GET", "users/@me")
    assert status == 429
    assert body == {"message": "You are being rate limited.", "retry_after": 0.25, "global": False}
    assert headers["X-RateLimit-Scope"] == "shared" and headers["Retry-After"] == "1"
    status, body, _ = await call(http, "GET", "users/@me")
    assert (status, body) == (503, {"message": "503: Service Unavailable", "code": 0})
    status, _, _ = await call(http, "GET", "users/@me")
    assert status == 200
    assert [r.status for r in fake_discord.requests] == [429, 503, 200]
    assert fake_discord.violations == []  # injected failures are not the bot's fault


async def test_an_interaction_to_nowhere_is_a_clear_error(fake_discord: FakeDiscord) -> None:
    with pytest.raises(LookupError, match="not registered"):
        await fake_discord.invoke("http://127.0.0.1:9/", "pod list")
    with pytest.raises(TimeoutError, match=r"waited 0\.05 s"):
        await fake_discord.wait_for(lambda: False, timeout=0.05)


def test_the_fixture_fails_a_test_that_sent_a_rejected_payload(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(
        """
        import aiohttp

        async def test_too_long(fake_discord):
            headers = {"Authorization": f"Bot {fake_discord.bot_token}"}
            url = f"{fake_discord.api_url}/channels/{fake_discord.channel_id}/messages"
            async with aiohttp.ClientSession(headers=headers) as http:
                async with http.post(url, json={"content": "x" * 2001}) as response:
                    assert response.status == 400

        async def test_fine(fake_discord):
            headers = {"Authorization": f"Bot {fake_discord.bot_token}"}
            url = f"{fake_discord.api_url}/channels/{fake_discord.channel_id}/messages"
            async with aiohttp.ClientSession(headers=headers) as http:
                async with http.post(url, json={"content": "ok"}) as response:
                    assert response.status == 200
        """
    )
    result = pytester.runpytest("-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        ["*the fake Discord received payloads Discord would reject:*", "*content: Must be 2000*"]
    )


async def test_the_gateway_speaks_discords_handshake(fake_discord: FakeDiscord) -> None:
    inflate = zlib.decompressobj()

    async def receive(ws: aiohttp.ClientWebSocketResponse) -> Any:
        message = await ws.receive()
        return json.loads(inflate.decompress(message.data))

    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(fake_discord.gateway_url + "?v=10&compress=zlib-stream") as ws,
    ):
        hello = await receive(ws)
        assert hello["op"] == 10 and hello["d"]["heartbeat_interval"] > 0
        await ws.send_json({"op": 2, "d": {"token": fake_discord.bot_token, "intents": 1}})
        ready = await receive(ws)
        assert (ready["op"], ready["t"], ready["s"]) == (0, "READY", 1)
        assert ready["d"]["user"]["id"] == fake_discord.application_id
        await ws.send_json({"op": 1, "d": 1})
        assert (await receive(ws))["op"] == 11
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(fake_discord.gateway_url) as ws,
    ):
        assert json.loads((await ws.receive()).data)["op"] == 10  # uncompressed: text
        await ws.send_json({"op": 2, "d": {"token": "wrong", "intents": 1}})
        closed = await ws.receive()
        assert (closed.type, ws.close_code) == (aiohttp.WSMsgType.CLOSE, 4004)
    assert fake_discord.violations == ["gateway: IDENTIFY with a wrong bot token"]
    fake_discord.violations.clear()


Answer = Callable[[dict[str, Any]], Awaitable[web.StreamResponse]]


@pytest.fixture
async def serve(
    fake_discord: FakeDiscord, http: aiohttp.ClientSession
) -> AsyncIterator[Callable[[Answer], Awaitable[str]]]:
    """Start the smallest interaction server (it checks nothing) answering with ``answer``;
    the fake knows the command ``/ask``."""
    await call(http, "PUT", commands_path(fake_discord), [{"name": "ask", "description": "Asks"}])
    runners: list[web.AppRunner] = []

    async def start(answer: Answer) -> str:
        async def interaction(request: web.Request) -> web.StreamResponse:
            return await answer(await request.json())

        app = web.Application()
        app.router.add_post("/", interaction)
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return f"http://127.0.0.1:{runner.addresses[0][1]}/"

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def http_bot(serve: Callable[[Answer], Awaitable[str]]) -> str:
    """Answers /ask with a private button and a select in the HTTP reply."""
    private = {"type": 2, "style": 1, "label": "Yes", "custom_id": "yes"}
    pick = {"type": 3, "custom_id": "pick", "options": [{"label": "A", "value": "a"}]}

    async def answer(body: dict[str, Any]) -> web.Response:
        if body["type"] == 2:
            rows = [{"type": 1, "components": [private]}, {"type": 1, "components": [pick]}]
            data = {"content": "sure?", "flags": 64, "components": rows}
            return web.json_response({"type": 4, "data": data})
        values = body["data"].get("values")
        return web.json_response({"type": 7, "data": {"content": f"chose {values}"}})

    return await serve(answer)


async def test_only_the_user_who_sees_an_ephemeral_message_can_press_it(
    fake_discord: FakeDiscord, http_bot: str
) -> None:
    asked = await fake_discord.invoke(http_bot, "ask", user_id="1")
    assert asked.status == 200 and asked.message is not None and asked.message["flags"] == 64
    with pytest.raises(ValueError, match="only user 1 sees it"):
        await fake_discord.click(http_bot, asked.message, "yes", user_id="2")
    picked = await fake_discord.click(http_bot, asked.message, "pick", user_id="1", values=["a"])
    assert picked.payload["data"] == {"custom_id": "pick", "component_type": 3, "values": ["a"]}
    assert asked.message["content"] == "chose ['a']"


def http_reply(message: dict[str, Any], files: dict[str, bytes]) -> web.Response:
    """An answer to Discord's POST that creates ``message``: JSON, or with ``files``
    multipart (``payload_json`` and ``files[n]``) as hikari sends it."""
    if not files:
        return web.json_response({"type": 4, "data": message})
    attachments = [{"id": index, "filename": name} for index, name in enumerate(files)]
    form = aiohttp.MultipartWriter("form-data")
    payload = form.append_json({"type": 4, "data": {**message, "attachments": attachments}})
    payload.set_content_disposition("form-data", name="payload_json")
    for index, (name, data) in enumerate(files.items()):
        part = form.append(data, {"Content-Type": "text/plain"})
        part.set_content_disposition("form-data", name=f"files[{index}]", filename=name)
    return web.Response(body=form)


REPLY_FILES = {"json": {}, "multipart": {"pods.txt": b"jellyfin Running\n"}}


@pytest.mark.parametrize("reply", REPLY_FILES)
async def test_an_http_reply_is_the_initial_response(
    fake_discord: FakeDiscord,
    http: aiohttp.ClientSession,
    serve: Callable[[Answer], Awaitable[str]],
    reply: str,
) -> None:
    async def answer(body: dict[str, Any]) -> web.Response:
        return http_reply({"content": "here"}, REPLY_FILES[reply])

    result = await fake_discord.invoke(await serve(answer), "ask")
    assert result.initial is not None and result.initial["type"] == 4
    assert result.message is not None and result.message["content"] == "here"
    uploaded = [fake_discord.attachment_data(a) for a in result.message["attachments"]]
    assert uploaded == list(REPLY_FILES[reply].values())
    webhook = f"webhooks/{fake_discord.application_id}/{result.token}"
    status, followup, _ = await call(http, "POST", webhook, {"content": "and more"})
    assert status == 200 and [m["id"] for m in result.followups] == [followup["id"]]
    status, _, _ = await call(http, "PATCH", f"{webhook}/messages/@original", {"content": "now"})
    assert status == 200 and result.message["content"] == "now"
    assert fake_discord.violations == []


@pytest.mark.parametrize("reply", REPLY_FILES)
@pytest.mark.parametrize(
    ("method", "suffix"),
    [("POST", ""), ("PATCH", "/messages/@original")],
    ids=["follow-up", "edit"],
)
async def test_a_webhook_call_before_the_http_reply_is_read_is_refused(
    fake_discord: FakeDiscord,
    http: aiohttp.ClientSession,
    serve: Callable[[Answer], Awaitable[str]],
    reply: str,
    method: str,
    suffix: str,
) -> None:
    early: list[tuple[int, Any]] = []

    async def answer(body: dict[str, Any]) -> web.Response:
        # The bot has not answered Discord's POST yet: its token knows no response.
        path = f"webhooks/{fake_discord.application_id}/{body['token']}{suffix}"
        status, refusal, _ = await call(http, method, path, {"content": "too early"})
        early.append((status, refusal))
        return http_reply({"content": "the answer"}, REPLY_FILES[reply])

    result = await fake_discord.invoke(await serve(answer), "ask")
    assert early == [(404, {"message": "Unknown Webhook", "code": 10015})]
    assert fake_discord.violations == [
        f"{method} /webhooks/{fake_discord.application_id}/{result.token}{suffix}: "
        f"follow-up to interaction {result.id} before its initial response"
    ]
    # The reply, read afterwards, is still the initial response; the early call changed nothing.
    assert result.message is not None and result.message["content"] == "the answer"
    assert result.followups == []
    assert [m["content"] for m in fake_discord.channel_messages(result.channel_id)] == [
        "the answer"
    ]
    fake_discord.violations.clear()


async def test_an_http_reply_after_a_callback_is_a_violation(
    fake_discord: FakeDiscord,
    http: aiohttp.ClientSession,
    serve: Callable[[Answer], Awaitable[str]],
) -> None:
    async def answer(body: dict[str, Any]) -> web.Response:
        callback = f"interactions/{body['id']}/{body['token']}/callback"
        status, _, _ = await call(
            http, "POST", callback, {"type": 4, "data": {"content": "by callback"}}
        )
        assert status == 204
        return web.json_response({"type": 4, "data": {"content": "by reply"}})

    result = await fake_discord.invoke(await serve(answer), "ask")
    assert result.message is not None and result.message["content"] == "by callback"
    assert fake_discord.violations == [
        f"interaction {result.id}: answered in the HTTP reply after a callback "
        "(Discord: Interaction has already been acknowledged)"
    ]
    fake_discord.violations.clear()


async def test_an_http_reply_after_the_deadline_is_dropped(
    fake_discord: FakeDiscord, serve: Callable[[Answer], Awaitable[str]]
) -> None:
    async def answer(body: dict[str, Any]) -> web.Response:
        fake_discord.advance(4)  # the fake's clock: nothing sleeps
        return web.json_response({"type": 4, "data": {"content": "late"}})

    result = await fake_discord.invoke(await serve(answer), "ask")
    assert result.initial is None and result.message is None
    assert fake_discord.channel_messages(result.channel_id) == []
    assert fake_discord.violations == [
        f"interaction {result.id} (type 2) was not acknowledged within 3 s "
        "(the interaction server answered 200 after 4.0 s)"
    ]
    fake_discord.violations.clear()
