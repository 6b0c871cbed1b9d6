"""Handlers of ``/template``: browse the catalog, render, deploy, update and delete."""

from __future__ import annotations

from typing import Any

from clustercord_builtins.templates import catalog, policy
from clustercord_builtins.templates.deployer import Deployer, Outcome
from clustercord_builtins.templates.inventory import values_name
from clustercord_builtins.templates.readiness import wait_ready
from clustercord_builtins.templates.render import render_manifests
from clustercord_builtins.templates.template import Template, TemplateError
from clustercord_builtins.templates.variables import VariableError, parse_vars, resolve
from clustercord_sdk import Card, CommandContext, Field, File, Reply, Table
from clustercord_sdk.errors import CommandError


def _vars(ctx: CommandContext) -> dict[str, Any]:
    try:
        return parse_vars(ctx.options.get("vars"))
    except VariableError as error:
        raise CommandError(str(error)) from None


def _deployer(ctx: CommandContext) -> Deployer:
    cluster, _ = ctx.kubernetes.target(ctx.options.get("cluster"))

    async def progress(current: float, total: float, label: str) -> None:
        await ctx.progress(current, total, label)

    return Deployer(ctx.kubernetes, cluster, store=ctx.store, by=ctx.user_id, progress=progress)


def post_install(
    template: Template, values: dict[str, Any], release: str, namespace: str
) -> list[str]:
    """The template's next steps with its public values filled in (secrets never are)."""
    from jinja2 import StrictUndefined
    from jinja2 import TemplateError as JinjaError
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(undefined=StrictUndefined)
    context = {**values, "release": release, "namespace": namespace}
    lines = []
    for line in template.post_install:
        try:
            lines.append(env.from_string(line).render(context))
        except JinjaError:
            lines.append(line)
    return lines


def estimate_of(template: Template) -> policy.Report:
    """The policy report of a render with defaults (secrets redacted): resources, warnings."""
    values = resolve(template, {}, redact_secrets=True)
    rendered = render_manifests(template, values.values, release=template.name, namespace="preview")
    return policy.check(rendered.objects, template.features)


# -- browsing ---------------------------------------------------------------------------
def search(ctx: CommandContext) -> Reply:
    found = catalog.search(ctx.store, ctx.options.get("category"), ctx.options.get("query"))
    rows = [
        [
            f"{e.template.icon} {e.template.title}",
            e.template.name,
            e.template.category.lower(),
            f"⭐ {e.popularity}",
            e.badge,
        ]
        for e in found
    ]
    return Reply(
        tables=[
            Table(
                ["Template", "Name", "Category", "Popularity", "Status"],
                rows,
                title=f"{len(rows)} templates",
            )
        ],
        text=None if rows else "No template matches; try /template search without a query.",
        data={
            "templates": [
                {
                    "name": e.template.name,
                    "category": e.template.category,
                    "source": e.source,
                    "status": e.status,
                    "popularity": e.popularity,
                }
                for e in found
            ]
        },
    )


def info(ctx: CommandContext) -> Reply:
    entry = catalog.find(ctx.store, ctx.options["template"])
    template = entry.template
    report = estimate_of(template)
    estimate = report.estimate.as_dict()
    wanted = template.requirements
    requirements = (
        ", ".join(
            f"{key.replace('_', ' ')} {wanted[key]}"
            for key in ("kubernetes_version", "nodes", "cpu", "memory", "storage")
            if key in wanted
        )
        or "none"
    )
    variables = [
        f"`{v.name}` ({v.type}{', secret' if v.secret else ''}"
        f"{', required' if v.required and v.default is None and not v.secret else ''})"
        + (f" = {v.default!r}" if v.default not in (None, "") else "")
        + (f" — {v.description}" if v.description else "")
        for v in template.variables
    ]
    fields = [
        Field("Status", entry.badge, inline=True),
        Field("Version", template.version, inline=True),
        Field("Category", template.category.lower(), inline=True),
        Field("Requirements", requirements),
        Field("Features", ", ".join(template.features) or "none"),
        Field("Components", "\n".join(f"• {c}" for c in template.raw.get("components", [])) or "—"),
        Field("Variables", "\n".join(variables) or "none"),
        Field(
            "Estimated resources",
            f"CPU {estimate['cpu_requests']} requested / {estimate['cpu_limits']} limit · "
            f"memory {estimate['memory_requests']} / {estimate['memory_limits']} · "
            f"storage {estimate['storage']}",
        ),
    ]
    if template.elevated:
        fields.append(Field("⚠️ Elevated", ", ".join(template.elevated)))
    return Reply(
        cards=[
            Card(
                title=f"{template.icon} {template.title}",
                description=template.description,
                fields=fields,
            )
        ],
        data={
            "name": template.name,
            "version": template.version,
            "status": entry.status,
            "source": entry.source,
            "requirements": wanted,
            "components": template.raw.get("components", []),
            "variables": [v.name for v in template.variables],
            "estimate": estimate,
            "elevated": list(template.elevated),
        },
    )


def render(ctx: CommandContext) -> Reply:
    entry = catalog.find(ctx.store, ctx.options["template"])
    template = entry.template
    namespace = ctx.options.get("namespace") or template.name
    try:
        values = resolve(template, _vars(ctx), redact_secrets=True)
        rendered = render_manifests(
            template, values.values, release=template.name, namespace=namespace
        )
    except (VariableError, TemplateError) as error:
        raise CommandError(f"{template.name}: {error}") from None
    text = rendered.yaml()
    return Reply(
        text=f"{len(rendered.objects)} objects; secret variables are shown as <secret>.",
        files=[
            File(f"{template.name}.yaml", text.encode(), "rendered manifests", "application/yaml")
        ],
        data={"objects": [f"{o['kind']}/{o['metadata']['name']}" for o in rendered.objects]},
    )


def guide(ctx: CommandContext) -> Reply:
    entry = catalog.find(ctx.store, ctx.options["template"])
    template = entry.template
    steps = post_install(
        template, resolve(template, {}, redact_secrets=True).public(), template.name, "<namespace>"
    )
    body = "\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1))
    if template.raw.get("guide"):
        body += "\n\n" + template.raw["guide"]
    return Reply(
        cards=[Card(title=f"{template.icon} {template.title}: guide", description=body or "—")],
        data={"steps": steps},
    )


# -- deploying --------------------------------------------------------------------------
def _credentials(outcome: Outcome) -> Reply | None:
    if not outcome.generated:
        return None
    lines = "\n".join(f"{name}: ||{value}||" for name, value in sorted(outcome.generated.items()))
    release = outcome.release
    return Reply(
        text=f"🔐 Generated credentials for {release.release} (only you see this; they are "
        f"kept in Secret {values_name(release.release)} in namespace {release.namespace}):\n"
        + lines,
        ephemeral=True,
    )


async def deploy(ctx: CommandContext) -> Reply:
    entry = catalog.find(ctx.store, ctx.options["template"])
    catalog.deployable(entry)
    deployer = _deployer(ctx)
    namespace = ctx.options["namespace"]
    plan = deployer.plan(entry, namespace, _vars(ctx))
    outcome = await deployer.deploy(plan)
    waiting: list[str] = []
    if ctx.options.get("wait", True):
        waiting = await wait_ready(
            ctx.kubernetes,
            deployer.cluster,
            namespace,
            plan.set_id,
            timeout=float(ctx.config.get("ready_timeout", 300)),
            progress=deployer.progress,
        )
    credentials = _credentials(outcome)
    if credentials is not None:
        await ctx.send(credentials)
    release = outcome.release
    steps = post_install(entry.template, plan.values.public(), release.release, namespace)
    return Reply(
        cards=[
            Card(
                title=f"✅ {entry.template.icon} {entry.template.title} deployed"
                + ("" if not waiting else " (starting)"),
                color="orange" if waiting else "green",
                fields=[
                    Field("Deployment", release.id, inline=True),
                    Field("Namespace", namespace, inline=True),
                    Field("Cluster", deployer.cluster, inline=True),
                    Field("Objects", str(len(outcome.applied)), inline=True),
                    Field("Next steps", "\n".join(f"• {s}" for s in steps) or "—"),
                ]
                + ([Field("Credentials", "sent to you privately")] if credentials else [])
                + (
                    [Field("⏳ Not ready yet", ", ".join(waiting) + " (check /pod list)")]
                    if waiting
                    else []
                ),
            )
        ],
        data={
            "deployment": release.id,
            "namespace": namespace,
            "cluster": deployer.cluster,
            "objects": outcome.applied,
            "generated": sorted(outcome.generated),
            "not_ready": waiting,
        },
    )


async def list_deployed(ctx: CommandContext) -> Reply:
    deployer = _deployer(ctx)
    releases = await deployer.releases()
    rows = [
        [
            r.id,
            f"{r.template}@{r.version}",
            r.namespace,
            r.revision,
            r.status,
            (r.revisions[-1]["at"] if r.revisions else ""),
        ]
        for r, _ in releases
    ]
    return Reply(
        tables=[
            Table(
                ["ID", "Template", "Namespace", "Revision", "Status", "Updated"],
                rows,
                title=f"{len(rows)} deployments on {deployer.cluster}",
            )
        ],
        data={
            "deployments": [
                {
                    "id": r.id,
                    "template": r.template,
                    "version": r.version,
                    "namespace": r.namespace,
                    "release": r.release,
                    "revision": r.revision,
                    "status": r.status,
                    "members": [f"{m['kind']}/{m['name']}" for m in r.members],
                }
                for r, _ in releases
            ]
        },
    )


async def update(ctx: CommandContext) -> Reply:
    deployer = _deployer(ctx)
    release = await deployer.find(ctx.options["deployment"])
    entry = catalog.find(ctx.store, release.template)
    catalog.deployable(entry)
    outcome = await deployer.update(release, entry, _vars(ctx))
    files = (
        [File(f"{release.release}.diff", outcome.diff.encode(), "what changed", "text/x-diff")]
        if outcome.diff
        else []
    )
    return Reply(
        text=f"Updated {release.release} in {release.namespace} to {entry.template.name}@"
        f"{entry.template.version} (revision {outcome.release.revision}): "
        f"{len(outcome.applied)} objects applied"
        + (f", pruned {', '.join(outcome.pruned)}" if outcome.pruned else "")
        + ("" if outcome.diff else "; nothing changed")
        + ".",
        files=files,
        data={
            "deployment": release.id,
            "revision": outcome.release.revision,
            "pruned": outcome.pruned,
            "changed": bool(outcome.diff),
        },
    )


async def delete(ctx: CommandContext) -> Reply:
    deployer = _deployer(ctx)
    release = await deployer.find(ctx.options["deployment"])
    delete_data = bool(ctx.options.get("delete_data"))
    deleted, kept = await deployer.delete(release, delete_data=delete_data)
    text = f"Deleted {release.release} from {release.namespace}: {len(deleted)} objects removed."
    if kept:
        text += f" Kept the data ({', '.join(kept)}); delete_data:true removes it too."
    return Reply(text=text, data={"deployment": release.id, "deleted": deleted, "kept": kept})


def template_names(ctx: Any, value: str) -> list[str]:
    return [
        e.template.name for e in catalog.entries(ctx.store) if e.template.name.startswith(value)
    ][:25]
