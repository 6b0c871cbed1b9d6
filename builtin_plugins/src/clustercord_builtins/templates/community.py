"""Community templates: ``/template submit``, ``vote`` and an admin's ``verify``.

A submission goes through the whole validation pipeline before it is stored: the template
schema, a render with its defaults, every object against the Kubernetes 1.30 schemas
(strict), the security policy, the resource estimate and a server-side dry run in a
throwaway namespace that is deleted afterwards. A failing submission changes nothing and
says why; a passing one is stored as ``validated`` and can be deployed, marked as community,
until an admin verifies it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import secrets
from typing import Any

from clustercord_builtins.templates import catalog
from clustercord_builtins.templates.commands import helm_access
from clustercord_builtins.templates.deployer import Deployer
from clustercord_builtins.templates.kinds import apply_order
from clustercord_builtins.templates.limits import RenderLimits
from clustercord_builtins.templates.render import MANAGED_BY, MANAGER
from clustercord_builtins.templates.template import (
    TemplateError,
    load_template,
    parse_template_json,
)
from clustercord_builtins.templates.validation import check_template
from clustercord_builtins.templates.variables import VariableError
from clustercord_sdk import Card, CommandContext, Field, Reply
from clustercord_sdk.errors import CommandError

VOTES_TABLE = "votes"
MAX_SIZE = 256 * 1024


async def server_dry_run(deployer: Deployer, checked: Any) -> str:
    """Dry-run every object in a throwaway namespace (created, then deleted)."""
    namespace = f"cc-validate-{secrets.token_hex(4)}"
    kube = deployer.kube
    await kube.create(
        "namespaces",
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": namespace, "labels": {MANAGED_BY: MANAGER}},
        },
        cluster=deployer.cluster,
    )
    try:
        objects = [
            {**o, "metadata": {**o["metadata"], "namespace": namespace}}
            for o in checked.rendered.objects
        ]
        await deployer.dry_run(apply_order(objects))
    finally:
        await kube.delete("namespaces", namespace, cluster=deployer.cluster)
    return namespace


async def validate_submission(
    data: bytes, deployer: Deployer | None, *, helm_allowed: bool = False
) -> tuple[Any, Any]:
    """The pipeline; raises :class:`TemplateError` or :class:`CommandError` with the reason.

    The JSON file is read here (a bounded size, and JSON has no aliases); its manifests are
    rendered, parsed, checked against the Kubernetes schemas and the policy in the bounded
    child (:func:`check_template` with limits). ``helm_allowed``: the caller ran
    :func:`.commands.helm_access` for this user (a template with charts is refused without)."""
    if len(data) > MAX_SIZE:
        raise TemplateError(f"the file is {len(data)} bytes; at most {MAX_SIZE} are accepted")
    raw = parse_template_json(data, "the submitted template")
    template = load_template(raw, source="the submitted template")
    if "clusterWide" in template.features:
        # CRDs and cluster-wide rights reach every namespace: only the curated operator
        # stacks, reviewed with the code, may ship them.
        raise TemplateError(
            "a community template may not create cluster-wide objects (CRDs, ClusterRoles, "
            "ClusterRoleBindings): only curated operator stacks do"
        )
    if template.name in catalog.curated():
        raise TemplateError(
            f"{template.name} is the name of a curated template: choose another name"
        )
    limits = deployer.render_limits if deployer is not None else RenderLimits()
    # In a thread: the bounded render takes a child process and up to its limit.
    checked = await asyncio.to_thread(
        functools.partial(check_template, template, limits=limits, helm_allowed=helm_allowed)
    )
    if checked.report.errors:
        raise TemplateError(
            "the security policy refuses it:\n"
            + "\n".join(f"- {e}" for e in checked.report.errors[:10])
        )
    if deployer is not None:
        await server_dry_run(deployer, checked)
    return template, checked


async def submit(ctx: CommandContext) -> Reply:
    upload = ctx.options["file"]
    cluster, _ = ctx.kubernetes.target(ctx.options.get("cluster"))
    deployer = Deployer(
        ctx.kubernetes,
        cluster,
        store=ctx.store,
        by=ctx.user_id,
        render_limits=RenderLimits.from_config(ctx.config),
    )
    # The access check comes first, before anything of the file is read or run: only a user
    # whose identity may create namespaces (the dry run below does) gets further, so a chat
    # user with no mapped identity cannot make the bot render, parse or run helm at all.
    await helm_access(ctx.kubernetes, cluster)
    try:
        template, checked = await validate_submission(upload.data, deployer, helm_allowed=True)
    except (TemplateError, VariableError, CommandError) as error:
        raise CommandError(f"{upload.name} was not accepted: {error}") from None
    existing = [r for r in catalog.community_rows(ctx.store) if r["name"] == template.name]
    if existing and existing[0]["author"] != ctx.user_id:
        raise CommandError(f"community template {template.name} belongs to another author")
    estimate = checked.report.estimate.as_dict()
    catalog.save_community(
        ctx.store,
        {
            "name": template.name,
            "version": template.version,
            "author": ctx.user_id,
            "status": "validated",
            "votes": existing[0]["votes"] if existing else 0,
            "template": json.dumps(template.raw),
            "warnings": json.dumps(checked.warnings),
            "elevated": ",".join(sorted(checked.report.elevated)),
            "estimate": json.dumps(estimate),
        },
    )
    fields = [
        Field("Objects", str(len(checked.rendered.objects)), inline=True),
        Field("Status", "validated (community)", inline=True),
        Field(
            "Estimated resources",
            f"CPU {estimate['cpu_requests']} / {estimate['cpu_limits']}, memory "
            f"{estimate['memory_requests']} / {estimate['memory_limits']}, storage "
            f"{estimate['storage']}",
        ),
    ]
    if checked.report.elevated:
        fields.append(Field("⚠️ Elevated", ", ".join(sorted(checked.report.elevated))))
    if checked.warnings:
        fields.append(Field("Warnings", "\n".join(f"• {w}" for w in checked.warnings[:10])))
    return Reply(
        cards=[
            Card(
                title=f"🧪 {template.name} {template.version} accepted",
                fields=fields,
                description="It passed the schema, Kubernetes 1.30 validation, the security "
                "policy and a server-side dry run. Others can now /template vote for it.",
            )
        ],
        data={
            "name": template.name,
            "status": "validated",
            "warnings": checked.warnings,
            "elevated": sorted(checked.report.elevated),
            "estimate": estimate,
        },
    )


def _community(ctx: CommandContext, name: str) -> dict[str, Any]:
    for row in catalog.community_rows(ctx.store):
        if row["name"] == name:
            return row
    if name in catalog.curated():
        raise CommandError(f"{name} is a curated template: it is verified already")
    raise CommandError(f"no community template named {name!r}")


def vote(ctx: CommandContext) -> Reply:
    row = _community(ctx, ctx.options["template"])
    votes = ctx.store.table(VOTES_TABLE)
    key = {"template": row["name"], "user": ctx.user_id}
    if votes.exists() and list(votes.rows_where("template = :template and user = :user", key)):
        raise CommandError(f"you already voted for {row['name']}")
    votes.insert(key)
    total = votes.count_where("template = ?", [row["name"]])
    catalog.save_community(ctx.store, {**row, "votes": total})
    return Reply(text=f"Voted for {row['name']}: {total} votes.", data={"votes": total})


def verify(ctx: CommandContext) -> Reply:
    row = _community(ctx, ctx.options["template"])
    if row["status"] not in ("validated", "verified"):
        raise CommandError(
            f"{row['name']} is {row['status']}: only a validated template can be verified"
        )
    catalog.save_community(ctx.store, {**row, "status": "verified", "verified_by": ctx.user_id})
    return Reply(
        text=f"✅ {row['name']} is now verified.", data={"name": row["name"], "status": "verified"}
    )
