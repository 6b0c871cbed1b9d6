"""Grants, enable/disable, config and the access policy, across restarts."""

from __future__ import annotations

import json

from clustercord.config import AccessConfig

from .conftest import one_command


async def test_new_plugin_with_permissions_waits_for_an_admin(clustercord_harness, add_plugin):
    harness = clustercord_harness
    harness.add_builtins(["plugins"])
    add_plugin("reader", manifest={"permissions": ["pods:read"]})
    await harness.start()

    assert harness.plugin("reader").state == "awaiting-approval"
    assert "pods:read" in harness.plugin("reader").reason
    waiting = await harness.run("/reader")
    assert waiting.status == "error" and "which is awaiting-approval" in waiting.text

    approved = await harness.run("/plugin permissions name:reader approve:true")
    assert approved.ok, approved.text
    assert (await harness.run("/reader")).text == "reader ran"

    await harness.restart()
    assert harness.plugin("reader").state == "enabled"


async def test_update_that_adds_permissions_is_disabled_until_approved(
    clustercord_harness, add_plugin
):
    harness = clustercord_harness
    harness.add_builtins(["plugins"])
    folder = add_plugin("reader", manifest={"permissions": ["pods:read"]})
    await harness.start()
    await harness.run("/plugin permissions name:reader approve:true")

    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["version"] = "1.1.0"
    manifest["permissions"] = ["pods:read", "secrets:read"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    harness.signer.sign(folder)
    await harness.restart()

    reader = harness.plugin("reader")
    assert reader.state == "awaiting-approval"
    assert reader.reason == "needs an admin to approve: secrets:read"
    shown = await harness.run("/plugin permissions name:reader")
    assert shown.reply.data == {"declared": ["pods:read", "secrets:read"], "granted": ["pods:read"]}


async def test_builtins_are_granted_by_the_installation(clustercord_harness):
    harness = clustercord_harness
    harness.add_builtins()
    await harness.start()
    assert {p.state for p in harness.kernel.manager.plugins.values()} == {"enabled"}


async def test_disable_and_enable_survive_restarts(clustercord_harness, add_plugin):
    harness = clustercord_harness
    harness.add_builtins(["plugins"])
    add_plugin("thing")
    await harness.start()

    result = await harness.run("/plugin disable name:thing reason:noisy")
    assert result.ok and harness.plugin("thing").state == "disabled"
    await harness.restart()
    assert harness.plugin("thing").state == "disabled"
    assert harness.plugin("thing").reason == "noisy"
    assert (await harness.run("/thing")).text.endswith("which is disabled: noisy")

    assert (await harness.run("/plugin enable name:thing")).ok
    await harness.restart()
    assert (await harness.run("/thing")).text == "thing ran"


CONFIG = {
    "config": {
        "interval": {"type": "duration", "default": "6h"},
        "retries": {"type": "integer", "default": 3, "min": 0, "max": 10},
    }
}


async def test_config_is_validated_stored_and_announced(clustercord_harness, add_plugin):
    harness = clustercord_harness
    harness.add_builtins(["plugins"])
    add_plugin(
        "cfg",
        manifest=CONFIG,
        init="""
        @hookimpl
        def on_config_changed(key, old, new, ctx):
            ctx.store.set("changed", [key, old, new])
    """,
    )
    await harness.start()

    assert (await harness.run("/plugin config name:cfg key:interval value:12h")).ok
    assert harness.plugin("cfg").context.store.get("changed") == ["interval", 21600.0, 43200.0]

    wrong = await harness.run("/plugin config name:cfg key:retries value:many")
    assert wrong.status == "usage"
    assert "option retries: 'many' is not a whole number" in wrong.text
    too_big = await harness.run("/plugin config name:cfg key:retries value:11")
    assert too_big.status == "usage" and "maximum 10" in too_big.text

    await harness.restart()
    assert harness.plugin("cfg").config == {"interval": 43200.0, "retries": 3}


async def test_allowlist_keeps_other_plugins_off(clustercord_harness, add_plugin):
    harness = clustercord_harness
    add_plugin("one")
    add_plugin("two")
    await harness.restart(plugins_allowlist=frozenset({"one"}))
    assert harness.plugin("one").state == "enabled"
    assert harness.plugin("two").state == "disabled"
    assert harness.plugin("two").reason == "not in the CLUSTERCORD_PLUGINS allowlist"


async def test_admin_commands_need_an_admin(clustercord_harness, add_plugin):
    harness = clustercord_harness
    harness.add_builtins(["plugins"])
    add_plugin("thing")
    await harness.restart(access=AccessConfig(admins=frozenset({"role:42"})))

    refused = await harness.run(
        "/plugin disable name:thing", user="7", roles=["1"], frontend="discord"
    )
    assert refused.status == "denied" and "admins only" in refused.text
    assert harness.plugin("thing").state == "enabled"
    allowed = await harness.run(
        "/plugin disable name:thing", user="8", roles=["42"], frontend="discord"
    )
    assert allowed.ok


async def test_role_rules_restrict_named_commands(clustercord_harness, add_plugin):
    harness = clustercord_harness
    add_plugin("chaos")
    add_plugin("open")
    await harness.restart(access=AccessConfig(roles={"10": ("chaos:*", "chaos")}))

    assert (await harness.run("/chaos", user="1", roles=["10"], frontend="discord")).ok
    denied = await harness.run("/chaos", user="2", roles=["99"], frontend="discord")
    assert denied.status == "denied" and denied.text == "your roles do not allow /chaos"
    assert (await harness.run("/open", user="2", roles=["99"], frontend="discord")).ok


async def test_option_of_wrong_type_or_choice_runs_nothing(clustercord_harness, add_plugin):
    harness = clustercord_harness
    add_plugin(
        "scale",
        manifest=one_command(
            "scale",
            options=[
                {"name": "replicas", "type": "integer", "required": True},
                {"name": "mode", "type": "string", "choices": ["fast", "safe"]},
            ],
        ),
        modules={"commands": "def run(ctx):\n    ctx.store.set('ran', True)\n    return 'ok'\n"},
    )
    await harness.start()

    wrong_type = await harness.run("/scale replicas:three")
    bad_choice = await harness.run("/scale replicas:3 mode:yolo")
    assert wrong_type.status == bad_choice.status == "usage"
    assert "option replicas: 'three' is not a whole number" in wrong_type.text
    assert "'yolo' is not one of the choices: fast, safe" in bad_choice.text
    assert harness.plugin("scale").context.store.get("ran") is None
    assert (await harness.run("/scale replicas:3 mode:safe")).ok


async def test_destructive_commands_ask_first(clustercord_harness, add_plugin):
    harness = clustercord_harness
    add_plugin(
        "wipe",
        manifest=one_command("wipe", destructive=True),
        modules={"commands": "def run(ctx):\n    ctx.store.set('wiped', True)\n"},
    )
    await harness.start()

    refused = await harness.run("/wipe", yes=False)
    assert refused.status == "cancelled" and refused.asked
    assert harness.plugin("wipe").context.store.get("wiped") is None
    assert (await harness.run("/wipe", yes=True)).ok
    assert harness.plugin("wipe").context.store.get("wiped") is True


async def test_a_command_of_an_inactive_plugin_says_why(clustercord_harness, add_plugin):
    harness = clustercord_harness
    harness.add_builtins(["plugins"])
    add_plugin("thing")
    await harness.start()
    await harness.run("/plugin disable name:thing reason:maintenance")
    result = await harness.run("/thing")
    assert result.status == "error"
    assert result.text == "/thing belongs to plugin thing, which is disabled: maintenance"
