"""A real hikari RESTBot with lightbulb 3 (no ClusterCord) answers through the fake Discord.

If the fake were not faithful, hikari or lightbulb would fail to deserialize what it
sends or to parse what it answers, and these tests would fail.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import hikari
import lightbulb
import pytest
from nacl.signing import VerifyKey

from clustercord_testing.discord_reference import ReferenceBot, reference_bot
from clustercord_testing.fake_discord import STALE_AGE, FakeDiscord

PODS = ["jellyfin-0", "jellyseerr-7c9", "prowlarr-5d4", "radarr-0"]


async def complete_pod(ctx: lightbulb.AutocompleteContext[str]) -> None:
    typed = str(ctx.focused.value)
    await ctx.respond([pod for pod in PODS if pod.startswith(typed)])


def register_test_commands(discord: FakeDiscord, client: lightbulb.RestEnabledClient) -> None:
    guilds = [hikari.Snowflake(discord.guild_id)]

    class Pager(lightbulb.SlashCommand, name="pager", description="Page 1 with a next button"):
        @lightbulb.invoke
        async def invoke(self, ctx: lightbulb.Context) -> None:
            row = hikari.impl.MessageActionRowBuilder().add_interactive_button(
                hikari.ButtonStyle.PRIMARY, "page:2", label="▶"
            )
            await ctx.respond("page 1", component=row)

    class Rename(lightbulb.SlashCommand, name="rename", description="Opens a modal"):
        @lightbulb.invoke
        async def invoke(self, ctx: lightbulb.Context) -> None:
            row = hikari.impl.ModalActionRowBuilder().add_text_input("name", "New name")
            await ctx.respond_with_modal("Rename", "rename-modal", component=row)

    class Find(lightbulb.SlashCommand, name="find", description="Finds a pod"):
        name = lightbulb.string("name", "Pod name", autocomplete=complete_pod)

        @lightbulb.invoke
        async def invoke(self, ctx: lightbulb.Context) -> None:
            await ctx.respond(f"found {self.name}")

    class Report(lightbulb.SlashCommand, name="report", description="Answers with a file"):
        @lightbulb.invoke
        async def invoke(self, ctx: lightbulb.Context) -> None:
            await ctx.respond(
                "the report", attachment=hikari.Bytes(b"all pods ready\n", "report.txt")
            )

    class Whisper(lightbulb.SlashCommand, name="whisper", description="DMs the caller"):
        @lightbulb.invoke
        async def invoke(self, ctx: lightbulb.Context) -> None:
            channel = await ctx.client.rest.create_dm_channel(ctx.user.id)
            await channel.send("a secret")
            await ctx.respond("check your DMs", ephemeral=True)

    class Discuss(lightbulb.SlashCommand, name="discuss", description="Opens a thread"):
        @lightbulb.invoke
        async def invoke(self, ctx: lightbulb.Context) -> None:
            await ctx.respond("a thread below")
            message = await ctx.interaction.fetch_initial_response()
            thread = await ctx.client.rest.create_message_thread(ctx.channel_id, message, "talk")
            await ctx.client.rest.create_message(thread, "what do you need?")

    class Measure(lightbulb.SlashCommand, name="measure", description="Reads a file"):
        file = lightbulb.attachment("file", "The file to measure")

        @lightbulb.invoke
        async def invoke(self, ctx: lightbulb.Context) -> None:
            data = await self.file.read()
            lines = len(data.splitlines())
            await ctx.respond(f"{self.file.filename}: {len(data)} bytes, {lines} lines")

    ops = lightbulb.Group("ops", "Operations")
    pods = ops.subgroup("pods", "Pods")

    @pods.register
    class List(lightbulb.SlashCommand, name="list", description="Lists pods"):
        namespace = lightbulb.string("namespace", "Namespace")
        limit = lightbulb.integer("limit", "At most", default=10, min_value=1, max_value=50)

        @lightbulb.invoke
        async def invoke(self, ctx: lightbulb.Context) -> None:
            await ctx.respond(f"{self.limit} pods in {self.namespace}")

    for command in (Pager, Rename, Find, Report, Whisper, Discuss, Measure):
        client.register(command, guilds=guilds)
    client.register(ops, guilds=guilds)


async def on_component(
    interaction: hikari.ComponentInteraction,
) -> hikari.api.InteractionMessageBuilder:
    """A bare hikari listener: answered in the HTTP reply, not through the callback."""
    return interaction.build_response(hikari.ResponseType.MESSAGE_UPDATE).set_content(
        f"page 2 for {interaction.user.id}"
    )


async def on_modal(interaction: hikari.ModalInteraction) -> hikari.api.InteractionMessageBuilder:
    value = interaction.components[0].components[0]
    assert isinstance(value, hikari.TextInputComponent)
    return interaction.build_response().set_content(f"renamed to {value.value}")


@pytest.fixture
async def bot(fake_discord: FakeDiscord) -> AsyncIterator[ReferenceBot]:
    async with reference_bot(
        fake_discord, register=lambda client: register_test_commands(fake_discord, client)
    ) as running:
        server = running.bot.interaction_server
        server.set_listener(hikari.ComponentInteraction, on_component, replace=True)
        server.set_listener(hikari.ModalInteraction, on_modal, replace=True)
        yield running


async def test_startup_registers_commands_as_lightbulb_sends_them(
    fake_discord: FakeDiscord, bot: ReferenceBot
) -> None:
    calls = [
        (r.method, r.path.replace(fake_discord.application_id, "APP"))
        for r in fake_discord.requests
    ]
    guild = fake_discord.guild_id
    assert calls[:4] == [
        ("GET", "/oauth2/applications/@me"),
        ("GET", "/applications/APP/commands"),
        ("GET", f"/applications/APP/guilds/{guild}/commands"),
        ("PUT", f"/applications/APP/guilds/{guild}/commands"),
    ]
    registered = {c["name"]: c for c in fake_discord.commands(guild)}
    assert {"ping", "echo", "slow", "ops", "find"} <= set(registered)
    ops = registered["ops"]["options"][0]
    assert (ops["name"], ops["type"], ops["options"][0]["name"]) == ("pods", 2, "list")
    assert fake_discord.commands() == []  # nothing global


async def test_a_command_is_answered_through_the_callback(
    fake_discord: FakeDiscord, bot: ReferenceBot
) -> None:
    result = await fake_discord.invoke(bot.endpoint_url, "echo", {"text": "hi", "times": 3})
    assert result.status == 204  # lightbulb answers through the callback endpoint
    assert result.initial is not None and result.initial["type"] == 4
    assert result.message is not None and result.message["content"] == "hi hi hi"
    assert result.message["type"] == 20
    assert fake_discord.channel_messages(fake_discord.channel_id) == [result.message]


async def test_options_of_a_nested_subcommand_reach_the_handler(
    fake_discord: FakeDiscord, bot: ReferenceBot
) -> None:
    result = await fake_discord.invoke(
        bot.endpoint_url, "ops pods list", {"namespace": "media", "limit": 3}
    )
    assert result.message is not None and result.message["content"] == "3 pods in media"
    data = result.payload["data"]
    assert data["guild_id"] == fake_discord.guild_id
    assert data["options"][0]["options"][0]["options"] == [
        {"name": "namespace", "type": 3, "value": "media"},
        {"name": "limit", "type": 4, "value": 3},
    ]


async def test_the_client_checks_ranges_unless_told_not_to(
    fake_discord: FakeDiscord, bot: ReferenceBot
) -> None:
    with pytest.raises(ValueError, match="within"):
        await fake_discord.invoke(
            bot.endpoint_url, "ops pods list", {"namespace": "a", "limit": 99}
        )
    with pytest.raises(ValueError, match="requires"):
        await fake_discord.invoke(bot.endpoint_url, "echo")
    with pytest.raises(LookupError, match="not registered"):
        await fake_discord.invoke(bot.endpoint_url, "nope")


async def test_a_deferred_reply_is_filled_in_by_the_first_follow_up(
    fake_discord: FakeDiscord, bot: ReferenceBot
) -> None:
    result = await fake_discord.invoke(bot.endpoint_url, "slow")
    assert result.initial is not None and result.initial["type"] == 5
    message = await fake_discord.wait_for(
        lambda: result.message if result.message and result.message["content"] else None
    )
    assert message["content"] == "done"
    assert message["flags"] & 128 == 0  # no longer "thinking"
    assert result.followups == []  # the follow-up filled the deferred message in
    assert len(fake_discord.channel_messages(fake_discord.channel_id)) == 1


async def test_a_button_click_updates_the_message(
    fake_discord: FakeDiscord, bot: ReferenceBot
) -> None:
    shown = await fake_discord.invoke(bot.endpoint_url, "pager")
    assert shown.message is not None
    click = await fake_discord.click(bot.endpoint_url, shown.message, "page:2", user_id="42")
    assert click.status == 200  # answered in the HTTP reply
    assert click.initial is not None and click.initial["type"] == 7
    assert shown.message["content"] == "page 2 for 42"
    # The update named no components, so the button stays and can be pressed again.
    assert shown.message["components"][0]["components"][0]["custom_id"] == "page:2"
    assert click.payload["message"]["content"] == "page 1"  # as the user saw it
    again = await fake_discord.click(bot.endpoint_url, shown.message, "page:2", user_id="43")
    assert again.message_id == shown.message_id and shown.message["content"] == "page 2 for 43"
    with pytest.raises(LookupError, match="no component"):
        await fake_discord.click(bot.endpoint_url, shown.message, "page:3")


async def test_a_modal_opens_and_its_submission_is_answered(
    fake_discord: FakeDiscord, bot: ReferenceBot
) -> None:
    opened = await fake_discord.invoke(bot.endpoint_url, "rename", user_id="7")
    assert opened.modal is not None and opened.modal["title"] == "Rename"
    with pytest.raises(ValueError, match="shown to user 7"):
        await fake_discord.submit_modal(
            bot.endpoint_url, "rename-modal", {"name": "x"}, user_id="8"
        )
    submitted = await fake_discord.submit_modal(
        bot.endpoint_url, "rename-modal", {"name": "jellyfin"}, user_id="7"
    )
    assert submitted.message is not None and submitted.message["content"] == "renamed to jellyfin"


async def test_autocomplete_offers_the_bots_choices(
    fake_discord: FakeDiscord, bot: ReferenceBot
) -> None:
    result = await fake_discord.autocomplete(bot.endpoint_url, "find", focused="name", value="je")
    assert [c["value"] for c in result.choices] == ["jellyfin-0", "jellyseerr-7c9"]


async def test_a_file_attachment_is_stored_with_its_bytes(
    fake_discord: FakeDiscord, bot: ReferenceBot
) -> None:
    result = await fake_discord.invoke(bot.endpoint_url, "report")
    assert result.message is not None
    [attachment] = result.message["attachments"]
    assert attachment["filename"] == "report.txt"
    assert fake_discord.attachment_data(attachment) == b"all pods ready\n"
    [upload] = [r for r in fake_discord.requests if r.files]
    assert upload.files[0].field == "files[0]"


async def test_a_user_uploads_a_file_with_a_command(
    fake_discord: FakeDiscord, bot: ReferenceBot
) -> None:
    upload = ("values.yaml", b"replicas: 2\nimage: jellyfin\n")
    result = await fake_discord.invoke(bot.endpoint_url, "measure", {"file": upload})
    assert result.message is not None
    assert result.message["content"] == "values.yaml: 28 bytes, 2 lines"
    [attachment] = result.payload["data"]["resolved"]["attachments"].values()
    assert attachment["filename"] == "values.yaml"


async def test_a_dm_reaches_the_caller(fake_discord: FakeDiscord, bot: ReferenceBot) -> None:
    result = await fake_discord.invoke(bot.endpoint_url, "whisper", user_id="55")
    assert result.message is not None and result.message["flags"] & 64  # ephemeral
    [dm] = fake_discord.dm_messages("55")
    assert dm["content"] == "a secret" and "guild_id" not in dm


async def test_a_thread_is_opened_on_the_reply(
    fake_discord: FakeDiscord, bot: ReferenceBot
) -> None:
    result = await fake_discord.invoke(bot.endpoint_url, "discuss")
    assert result.message_id is not None
    thread_id = result.message_id  # a thread on a message takes the message's id
    [message] = await fake_discord.wait_for(lambda: fake_discord.channel_messages(thread_id))
    assert message["content"] == "what do you need?"
    thread = fake_discord.channels[thread_id]
    assert thread["parent_id"] == fake_discord.channel_id and thread["type"] == 11


async def test_a_command_in_a_dm_carries_a_user_not_a_member(fake_discord: FakeDiscord) -> None:
    async with reference_bot(fake_discord, guild_commands=False, fetch_public_key=True) as bot:
        assert fake_discord.commands(fake_discord.guild_id) == []
        result = await fake_discord.invoke(bot.endpoint_url, "ping", dm=True, user_id="77")
    assert "member" not in result.payload and result.payload["user"]["id"] == "77"
    assert "guild_id" not in result.payload["data"]
    assert result.message is not None and result.message["content"] == "pong"
    assert fake_discord.dm_messages("77") == [result.message]


async def test_a_forged_signature_is_rejected_by_hikari(
    fake_discord: FakeDiscord, bot: ReferenceBot
) -> None:
    result = await fake_discord.invoke(bot.endpoint_url, "ping", forged=True)
    assert result.status == 400 and result.body == b"Invalid request signature"
    assert result.initial is None and result.message is None


async def test_a_stale_delivery_is_validly_signed_but_old(
    fake_discord: FakeDiscord, bot: ReferenceBot
) -> None:
    """Only the timestamp gives a replay away; bare hikari does not look at it, so an
    interaction server must (ClusterCord's front end answers 401)."""
    body = b'{"type": 1}'
    headers = fake_discord.sign(body, stale=True)
    stamp = headers["X-Signature-Timestamp"]
    VerifyKey(bytes.fromhex(fake_discord.public_key_hex)).verify(
        stamp.encode() + body, bytes.fromhex(headers["X-Signature-Ed25519"])
    )
    assert fake_discord.now() - int(stamp) >= STALE_AGE
    result = await fake_discord.invoke(bot.endpoint_url, "ping", stale=True)
    assert result.status == 204  # hikari 2.6 accepts it: the timestamp check is the server's


async def test_a_429_is_retried_by_hikari(fake_discord: FakeDiscord, bot: ReferenceBot) -> None:
    fake_discord.fail_next(r"/callback$", status=429, retry_after=0.05)
    result = await fake_discord.invoke(bot.endpoint_url, "ping")
    assert result.message is not None and result.message["content"] == "pong"
    callbacks = [r for r in fake_discord.requests if r.path.endswith("/callback")]
    assert [r.status for r in callbacks] == [429, 200]


async def test_a_payload_over_a_limit_is_refused_and_recorded(
    fake_discord: FakeDiscord, bot: ReferenceBot
) -> None:
    with pytest.raises(hikari.BadRequestError) as refused:
        await bot.bot.rest.create_message(hikari.Snowflake(fake_discord.channel_id), "x" * 2_001)
    assert refused.value.code == 50035  # hikari parsed Discord's error body
    assert "content" in refused.value.errors
    assert fake_discord.channel_messages(fake_discord.channel_id) == []
    assert fake_discord.violations == [
        f"POST /channels/{fake_discord.channel_id}/messages: a message Discord would reject: "
        "content: Must be 2000 or fewer in length. (BASE_TYPE_MAX_LENGTH)"
    ]
    fake_discord.violations.clear()  # expected: the fixture would fail the test otherwise


def answer_with(
    bot: ReferenceBot, handler: Callable[[hikari.CommandInteraction], Awaitable[None]]
) -> list[Exception]:
    """Replace lightbulb with a bare hikari listener that answers through the callback."""
    failures: list[Exception] = []

    async def listener(interaction: hikari.CommandInteraction) -> None:
        try:
            await handler(interaction)
        except hikari.HTTPResponseError as error:
            failures.append(error)

    bot.bot.interaction_server.set_listener(hikari.CommandInteraction, listener, replace=True)
    return failures


async def test_an_initial_response_too_long_is_refused(
    fake_discord: FakeDiscord, bot: ReferenceBot
) -> None:
    async def chatty(interaction: hikari.CommandInteraction) -> None:
        await interaction.create_initial_response(hikari.ResponseType.MESSAGE_CREATE, "x" * 2_001)

    failures = answer_with(bot, chatty)
    fake_discord.ack_deadline = 0.3  # how long the fake waits for a callback after the 204
    result = await fake_discord.invoke(bot.endpoint_url, "ping")
    assert result.initial is None and isinstance(failures[0], hikari.BadRequestError)
    assert any("data.content: Must be 2000 or fewer" in v for v in fake_discord.violations)
    assert any("not acknowledged" in v for v in fake_discord.violations)
    fake_discord.violations.clear()


async def test_an_initial_response_after_3_seconds_is_unknown(
    fake_discord: FakeDiscord, bot: ReferenceBot
) -> None:
    async def late(interaction: hikari.CommandInteraction) -> None:
        fake_discord.advance(4)  # the fake's clock: nothing sleeps
        await interaction.create_initial_response(hikari.ResponseType.MESSAGE_CREATE, "late")

    failures = answer_with(bot, late)
    result = await fake_discord.invoke(bot.endpoint_url, "ping")
    assert result.initial is None and isinstance(failures[0], hikari.NotFoundError)
    assert any("acknowledged after 3 s" in v for v in fake_discord.violations)
    fake_discord.violations.clear()


async def test_an_interaction_is_acknowledged_once(
    fake_discord: FakeDiscord, bot: ReferenceBot
) -> None:
    async def twice(interaction: hikari.CommandInteraction) -> None:
        await interaction.create_initial_response(hikari.ResponseType.MESSAGE_CREATE, "one")
        await interaction.create_initial_response(hikari.ResponseType.MESSAGE_CREATE, "two")

    failures = answer_with(bot, twice)
    result = await fake_discord.invoke(bot.endpoint_url, "ping")
    assert result.message is not None and result.message["content"] == "one"
    assert isinstance(failures[0], hikari.BadRequestError) and failures[0].code == 40060
    assert fake_discord.violations == [
        f"POST /interactions/{result.id}/{result.token}/callback: "
        f"interaction {result.id} acknowledged twice"
    ]
    fake_discord.violations.clear()


async def test_a_token_older_than_15_minutes_is_refused(
    fake_discord: FakeDiscord, bot: ReferenceBot
) -> None:
    result = await fake_discord.invoke(bot.endpoint_url, "ping")
    rest = bot.bot.rest
    await rest.execute_webhook(
        hikari.Snowflake(fake_discord.application_id), result.token, "in time"
    )
    fake_discord.advance(15 * 60 + 1)
    with pytest.raises(hikari.UnauthorizedError):
        await rest.execute_webhook(
            hikari.Snowflake(fake_discord.application_id), result.token, "too late"
        )
    assert [m["content"] for m in result.followups] == ["in time"]
    assert fake_discord.violations and "15 minutes" in fake_discord.violations[0]
    fake_discord.violations.clear()
