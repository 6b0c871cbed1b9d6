"""`/plugin list` and `/plugin info` show what a plugin may do grouped by verbs, not fifty
`resource:verb` strings in a row."""

from __future__ import annotations

from clustercord_builtins.plugins.commands import grouped_permissions


def test_permissions_are_grouped_by_their_verbs_in_declaration_order():
    declared = [
        "secrets:list",
        "secrets:create",
        "configmaps:list",
        "configmaps:create",
        "nodes:list",
        "pods:read",
        "pods:delete",
        "capability:conversations",
    ]
    assert grouped_permissions(declared) == [
        "list, create: secrets, configmaps",
        "list: nodes",
        "read, delete: pods",
        "capability:conversations",
    ]
    assert grouped_permissions([]) == []


async def test_plugin_list_and_info_show_the_grouped_view(clustercord_harness):
    clustercord_harness.add_builtins(["plugins", "templates"])
    await clustercord_harness.start()
    listed = await clustercord_harness.run("/plugin list")
    (row,) = [r for r in listed.reply.tables[0].rows if r[1] == "templates"]
    cell = row[-1]
    assert cell.startswith("list, create, patch, delete: serviceaccounts, ")
    assert ", secrets, configmaps, " in cell.split(";")[0]
    assert "; list: nodes, storageclasses.storage.k8s.io" in cell
    # The data keeps the exact declared strings for scripts.
    (data,) = [p for p in listed.reply.data["plugins"] if p["name"] == "templates"]
    assert "secrets:create" in data["permissions"]

    info = await clustercord_harness.run("/plugin info name:templates")
    field = next(f for f in info.reply.cards[0].fields if f.name == "Permissions")
    assert field.value.splitlines() == grouped_permissions(data["permissions"])
    assert len(field.value.splitlines()) < len(data["permissions"]) / 5
