"""An audit reads at any size: a summary first (severities, rules, the riskiest subjects,
the paths to cluster-admin), then findings grouped by rule and subject, one page at a time.
Only the page shown is built; each fits one Discord message whole; ◀ ▶ and ``page:N`` ask
for the next one, and every finding is still in the data with ``all:true``."""

from __future__ import annotations

import itertools

from clustercord.frontends.discord.render import REPLY_FILE, Renderer
from clustercord_builtins.rbac.view import PAGE_RULES, SEVERITY_LOOK
from clustercord_sdk.context import Invocation
from clustercord_testing.fake_discord import limits as discord_limits


class Minter:
    def __init__(self) -> None:
        self.ids = itertools.count()

    def mint(self, kind, state, *, allowed=None):
        return f"cc:test:{next(self.ids)}"


def fits_one_message(reply) -> None:
    message = Renderer(Minter()).render(reply)
    assert discord_limits.check_message(message.json(), file_count=len(message.files)) == []
    # Nothing was cut into the overflow file: every card arrived as an embed.
    assert REPLY_FILE not in [f.name for f in message.files]
    assert len(message.embeds) == len(reply.cards)


async def every_page(rbac, line):
    first = await rbac.run(line)
    assert first.ok, first.text
    pages = [first]
    for number in range(2, first.reply.data["pages"] + 1):
        pages.append(await rbac.run(f"{line} page:{number}"))
    return pages


async def test_a_summary_then_findings_grouped_by_rule_and_subject(rbac):
    complete = (await rbac.run("/rbac audit all:true")).reply.data["findings"]
    pages = await every_page(rbac, "/rbac audit")
    first = pages[0].reply
    assert first.data["pages"] > 1  # the homelab fixture needs several pages
    assert not first.pages  # nothing built eagerly: one page per answer
    summary = first.cards[0]
    assert summary.title == "RBAC audit of sandbox"
    assert [f.name for f in summary.fields][:2] == ["By rule", "Riskiest subjects"]
    assert first.data["summary"]["by_severity"] == {
        s: sum(f["severity"] == s for f in complete) for s in SEVERITY_LOOK
    }
    assert "findings" not in first.data  # all:true only
    # Each (rule, subject) once across the pages, with all of its findings counted.
    groups = [g for p in pages for g in p.reply.data["groups"]]
    keys = [(g["id"], tuple(g["subject"].values())) for g in groups]
    assert len(keys) == len(set(keys)) == first.data["summary"]["groups"]
    assert sum(g["count"] for g in groups) == len(complete)
    expected = {(f["id"], tuple(f["subject"].values())) for f in complete}
    assert set(keys) == expected
    for page in pages:
        rule_cards = page.reply.cards[1:] if page is pages[0] else page.reply.cards
        assert 0 < len(rule_cards) <= PAGE_RULES
        for card in rule_cards:
            rule = card.title.split(" · ")[0].split(" ", 1)[1]
            on_card = [g for g in page.reply.data["groups"] if g["id"] == rule]
            icon, color = SEVERITY_LOOK[on_card[0]["severity"]]
            assert card.title.startswith(icon) and card.color == color
            assert card.description.count("\n") + 1 == len(on_card)
            assert card.fields[-1].name == "Fix"


async def test_the_next_page_is_named_and_reached_by_a_button(rbac):
    first = (await rbac.run("/rbac audit severity:medium")).reply
    pages = first.data["pages"]
    assert pages > 1
    assert first.text == f"Page 1/{pages} · next: /rbac audit severity:medium page:2"
    assert first.data["cursor"]["command"] == "/rbac audit severity:medium page:2"
    previous, following = first.buttons
    assert previous.disabled and not following.disabled
    assert following.action == "commands:page" and following.value["page"] == 2
    last = (await rbac.run(f"/rbac audit severity:medium page:{pages + 5}")).reply
    assert last.data["page"] == pages and last.data["cursor"] is None
    assert last.buttons[1].disabled and "next" not in last.text
    # The button runs the page handler: page 2 built from the cluster as it is now.
    kernel = rbac.kernel
    sent = []

    async def send(reply):
        sent.append(reply)

    async def ask(confirmation):
        return True

    passage = await kernel.door.action(
        Invocation(user_id="console", command=("rbac", "audit"), options={}),
        plugin="rbac",
        action=following.action,
        value=following.value,
        send=send,
        ask=ask,
    )
    second = passage.reply
    typed = (await rbac.run("/rbac audit severity:medium page:2")).reply
    assert passage.status == "ok" and sent == []
    assert second.data["page"] == typed.data["page"] == 2
    assert second.data["groups"] == typed.data["groups"]
    assert all(g["severity"] != "low" for g in second.data["groups"])


async def test_the_next_page_line_keeps_the_cluster_asked_for(rbac):
    """Typed back, the ``next:`` line shows page 2 of the same audit: of the cluster named,
    not of whichever cluster is the default."""
    first = (await rbac.run("/rbac audit cluster:sandbox include_system:true")).reply
    line = "/rbac audit cluster:sandbox include_system:true page:2"
    assert first.data["cursor"]["command"] == line and f"next: {line}" in first.text
    second = (await rbac.run(line)).reply
    assert second.data["cluster"] == "sandbox" and second.data["page"] == 2


async def test_every_audit_page_fits_one_discord_message_whole(rbac):
    pages = await every_page(rbac, "/rbac audit include_system:true")
    assert len(pages) > 2  # Kubernetes' own bindings add long paths
    for page in pages:
        fits_one_message(page.reply)
