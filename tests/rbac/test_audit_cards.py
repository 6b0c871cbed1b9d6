"""An audit reads as one card per finding, in its severity's colour, paged so that each
message stays within Discord's 10 embeds; the JSON stays the complete list."""

from __future__ import annotations

import itertools

from clustercord.frontends.discord.render import REPLY_FILE, Renderer
from clustercord_builtins.rbac.commands import AUDIT_PAGE_FINDINGS, SEVERITY_LOOK
from clustercord_testing.fake_discord import limits as discord_limits


class Minter:
    def __init__(self) -> None:
        self.ids = itertools.count()

    def mint(self, kind, state, *, allowed=None):
        return f"cc:test:{next(self.ids)}"


async def test_each_finding_is_a_card_coloured_by_severity(rbac):
    result = await rbac.run("/rbac audit")
    assert result.ok, result.text
    findings = result.reply.data["findings"]
    pages = result.reply.pages or [result.reply]
    assert len(findings) > AUDIT_PAGE_FINDINGS  # the homelab fixture needs several pages
    assert len(pages) == -(-len(findings) // AUDIT_PAGE_FINDINGS)

    summary, *first = pages[0].cards
    assert summary.title == "RBAC audit of sandbox"
    cards = first + [card for page in pages[1:] for card in page.cards]
    assert all(len(page.cards) <= 1 + AUDIT_PAGE_FINDINGS for page in pages)
    assert not any(page.tables for page in pages)
    assert len(cards) == len(findings)
    for card, finding in zip(cards, findings, strict=True):
        icon, color = SEVERITY_LOOK[finding["severity"]]
        assert card.title.startswith(f"{icon} {finding['id']} · {finding['severity']} · ")
        assert card.color == color
        assert [f.value for f in card.fields] == [
            " → ".join(finding["path"]["steps"]),
            finding["recommendation"],
        ]
        # The title names the subject; the description does not say it again.
        subject = card.title.rsplit(" · ", 1)[1]
        assert not card.description.startswith(f"{subject}: ")


async def test_every_audit_page_fits_one_discord_message_whole(rbac):
    result = await rbac.run("/rbac audit include_system:true")
    assert len(result.reply.pages) > 2  # Kubernetes' own bindings add long paths
    for page in result.reply.pages:
        message = Renderer(Minter()).render(page)
        assert discord_limits.check_message(message.json(), file_count=len(message.files)) == []
        # Nothing was cut into the overflow file: every card arrived as an embed.
        assert REPLY_FILE not in [f.name for f in message.files]
        assert len(message.embeds) == len(page.cards)
