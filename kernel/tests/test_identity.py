"""Discord users and roles mapped to Kubernetes identities."""

from __future__ import annotations

import pytest

from clustercord.config import load_settings
from clustercord.kubernetes.identity import IdentityMap
from clustercord_sdk.errors import PermissionDenied, UsageError

CONFIG = """
[identity.users]
"111" = { user = "alice@example.com", groups = ["sre"] }
"333" = { user = "bob" }

[identity.roles]
"900" = { groups = ["platform-admins", "sre"] }
"""


def settings_with(tmp_path, text):
    path = tmp_path / "clustercord.toml"
    path.write_text(text)
    return load_settings(
        env={"CLUSTERCORD_DATA_DIR": str(tmp_path), "CLUSTERCORD_CONFIG": str(path)}
    )


def test_users_get_their_groups_plus_their_roles_groups(tmp_path):
    identities = IdentityMap.from_config(settings_with(tmp_path, CONFIG).identity)
    alice = identities.resolve("111", roles=["900", "12345"])
    assert alice.user == "alice@example.com"
    assert alice.groups == ("sre", "platform-admins", "system:authenticated")
    assert identities.resolve("333").groups == ("system:authenticated",)
    assert identities.discord_ids_of("bob") == ["333"]


def test_an_unmapped_user_is_refused_with_the_way_out(tmp_path):
    identities = IdentityMap.from_config(settings_with(tmp_path, CONFIG).identity)
    with pytest.raises(
        PermissionDenied, match=r"not mapped to a Kubernetes identity.*identity\.users"
    ):
        identities.resolve("222", roles=["900"])  # a role alone names nobody


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[identity.users]\n"1" = { groups = ["x"] }\n', "identity.users.1 needs user = "),
        ('[identity.users]\n"1" = { user = "a", groups = "sre" }\n', "groups must be a list"),
        ('[identity.roles]\n"9" = { user = "a" }\n', "a role names no user"),
        ('[identity.users]\n"1" = { user = "a", groups = ["system:masters"] }\n', "bypasses RBAC"),
        ("identity = 3\n", r"\[identity\] must be a table"),
    ],
)
def test_a_bad_mapping_is_refused_when_the_configuration_loads(tmp_path, text, message):
    with pytest.raises(UsageError, match=message):
        settings_with(tmp_path, text)
