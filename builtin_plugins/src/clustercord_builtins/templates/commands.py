"""Handlers of ``/template``: browse the catalog, render, deploy, update and delete."""

from __future__ import annotations

import asyncio
import functools
import secrets
from typing import Any

from clustercord_builtins.templates import catalog, policy
from clustercord_builtins.templates.deployer import Deployer, Outcome
from clustercord_builtins.templates.inventory import values_name
from clustercord_builtins.templates.limits import RenderLimits, run_limited
from clustercord_builtins.templates.readiness import wait_ready
from clustercord_builtins.templates.render import render_lines, render_manifests
from clustercord_builtins.templates.template import Template, TemplateError
from clustercord_builtins.templates.validation import checks
from clustercord_builtins.templates.variables import (
    ASK,
    VariableError,
    form_inputs,
    form_variables,
    missing_required,
    parse_vars,
    resolve,
)
from clustercord_sdk import Card, CommandContext, Field, File, Modal, Reply, Table
from clustercord_sdk.errors import CommandError, PermissionDenied


def _vars(ctx: CommandContext) -> dict[str, Any]:
    try:
        return parse_vars(ctx.options.get("vars"))
    except VariableError as error:
        raise CommandError(str(error)) from None


def _deployer(ctx: CommandContext, cluster: str | None = None) -> Deployer:
    cluster, _ = ctx.kubernetes.target(cluster or ctx.options.get("cluster"))

    async def progress(current: float, total: float, label: str) -> None:
        await ctx.progress(current, total, label)

    return Deployer(
        ctx.kubernetes,
        cluster,
        store=ctx.store,
        by=ctx.user_id,
        progress=progress,
        render_limits=RenderLimits.from_config(ctx.config),
    )


HELM_CHECK_NAMESPACE = "cc-helm-access-check"


async def helm_access(kube: Any, cluster: str) -> None:
    """The access check before helm may run for this user: may their Kubernetes identity create
    a namespace (what ``/template submit``'s dry run needs)? Asked of the cluster with a
    server-side dry run, which also passes the user's SubjectAccessReview: a chat user with no
    mapped identity, or one who may not, is refused here and helm never starts."""
    body = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": f"{HELM_CHECK_NAMESPACE}-{secrets.token_hex(4)}"},
    }
    try:
        await kube.create("namespaces", body, cluster=cluster, dry_run=True)
    except PermissionDenied as error:
        raise PermissionDenied(
            f"helm runs only for users allowed to submit templates: {error}"
        ) from None


async def _helm_allowed(ctx: CommandContext, template: Template, cluster: str | None) -> bool:
    """Whether a render of ``template`` may run helm: only when it has charts and the user
    passed :func:`helm_access` (refused with the reason otherwise)."""
    if not template.helm_charts:
        return False
    name, _ = ctx.kubernetes.target(cluster)
    await helm_access(ctx.kubernetes, name)
    return True


def _limits(ctx: CommandContext, entry: catalog.Entry) -> RenderLimits | None:
    """Bounded rendering for community templates (see :mod:`.limits`); none for curated ones."""
    return None if entry.source == "curated" else RenderLimits.from_config(ctx.config)


def post_install(
    template: Template,
    values: dict[str, Any],
    release: str,
    namespace: str,
    *,
    limits: RenderLimits | None = None,
) -> list[str]:
    """The template's next steps with its public values filled in (secrets never are)."""
    context = {**values, "release": release, "namespace": namespace}
    lines = list(template.post_install)
    if limits is None:
        return render_lines(lines, context)
    return run_limited(template.name, limits, render_lines, lines, context)


def estimate_of(
    template: Template, limits: RenderLimits | None = None, *, helm_allowed: bool = False
) -> policy.Report:
    """The policy report of a render with defaults (secrets redacted): resources, warnings."""
    values = resolve(template, {}, redact_secrets=True)
    rendered = render_manifests(
        template,
        values.values,
        release=template.name,
        namespace="preview",
        limits=limits,
        helm_allowed=helm_allowed,
        check=checks(template),
    )
    report: policy.Report = rendered.report
    return report


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


async def info(ctx: CommandContext) -> Reply:
    entry = catalog.find(ctx.store, ctx.options["template"])
    template = entry.template
    helm = await _helm_allowed(ctx, template, None)
    try:
        report = await asyncio.to_thread(
            functools.partial(estimate_of, template, _limits(ctx, entry), helm_allowed=helm)
        )
    except TemplateError as error:
        raise CommandError(str(error)) from None
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


async def render(ctx: CommandContext) -> Reply:
    entry = catalog.find(ctx.store, ctx.options["template"])
    template = entry.template
    namespace = ctx.options.get("namespace") or template.name
    helm = await _helm_allowed(ctx, template, None)
    try:
        values = resolve(template, _vars(ctx), redact_secrets=True)
        rendered = await asyncio.to_thread(
            functools.partial(
                render_manifests,
                template,
                values.values,
                release=template.name,
                namespace=namespace,
                limits=_limits(ctx, entry),
                helm_allowed=helm,
            )
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
    try:
        steps = post_install(
            template,
            resolve(template, {}, redact_secrets=True).public(),
            template.name,
            "<namespace>",
            limits=_limits(ctx, entry),
        )
    except TemplateError as error:
        raise CommandError(str(error)) from None
    body = "\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1))
    if template.raw.get("guide"):
        body += "\n\n" + template.raw["guide"]
    return Reply(
        cards=[Card(title=f"{template.icon} {template.title}: guide", description=body or "—")],
        data={"steps": steps},
    )


# -- deploying --------------------------------------------------------------------------
FORM_KEY = "deploy-form:"
"""Plugin-store key (+ user id) of the deploy waiting for its form: public values only."""
DM_NOTE = "📬 sent you a DM"


def _private_note(template: Template, outcome: Outcome, steps: list[str]) -> Reply | None:
    """The DM after a deploy: how to reach it and the generated credentials (ephemeral,
    which also tells the kernel to keep it sealed until it is delivered)."""
    if not outcome.generated and not steps:
        return None
    release = outcome.release
    lines = [f"🚀 {template.title} is deployed as {release.id}."]
    if steps:
        lines += ["How to reach it:"] + [f"• {step}" for step in steps]
    if outcome.generated:
        lines.append(
            f"🔐 Generated credentials (kept in Secret {values_name(release.release)} "
            f"in namespace {release.namespace}):"
        )
        lines += [f"{name}: ||{value}||" for name, value in sorted(outcome.generated.items())]
    return Reply(text="\n".join(lines), ephemeral=True)


def _wants_form(ctx: CommandContext) -> bool:
    return str(ctx.options.get("vars") or "").strip().lower() == ASK


async def deploy(ctx: CommandContext) -> Reply:
    """``/template deploy``: with every variable known, deploy; with required ones missing
    (or ``vars:ask``), answer with a form whose submission deploys (``deploy_form``)."""
    entry = catalog.find(ctx.store, ctx.options["template"])
    catalog.deployable(entry)
    interactive = _wants_form(ctx)
    given = {} if interactive else _vars(ctx)
    try:
        asked = form_variables(entry.template, given, everything=interactive)
    except VariableError as error:
        raise CommandError(str(error)) from None
    if interactive or missing_required(entry.template, given):
        # Only what may be stored in clear waits for the form: a secret given inline is
        # asked for again (blank) rather than written to the plugin's store.
        public = {
            k: v
            for k, v in given.items()
            if k not in {x.name for x in entry.template.variables if x.secret}
        }
        ctx.store.set(
            FORM_KEY + ctx.user_id,
            {
                "template": entry.template.name,
                "namespace": ctx.options["namespace"],
                "cluster": ctx.options.get("cluster"),
                "wait": ctx.options.get("wait", True),
                "given": public,
                "asked": [v.name for v in asked],
            },
        )
        title = f"Deploy {entry.template.title}"
        return Reply(
            text=f"{entry.template.title} needs a few values before it can be deployed.",
            modal=Modal(
                title=title if len(title) <= 45 else title[:44] + "…",
                action="commands:deploy_form",
                inputs=form_inputs(asked, public),
            ),
        )
    return await _deploy(
        ctx,
        entry,
        ctx.options["namespace"],
        ctx.options.get("cluster"),
        given,
        wait=ctx.options.get("wait", True),
    )


async def deploy_form(ctx: CommandContext, fields: dict[str, str]) -> Reply:
    """The submitted deploy form (a Discord modal, console prompts): deploy with its values.
    A value that fails validation is named in the error and nothing is deployed."""
    pending = ctx.store.get(FORM_KEY + ctx.user_id)
    if pending is None:
        raise CommandError("this form has expired: run /template deploy again")
    ctx.store.delete(FORM_KEY + ctx.user_id)
    entry = catalog.find(ctx.store, pending["template"])
    catalog.deployable(entry)
    unexpected = sorted(set(fields) - set(pending["asked"]))
    if unexpected:
        raise CommandError(f"the form has no field {unexpected[0]!r}; nothing was deployed")
    given = {**pending["given"], **{k: v for k, v in fields.items() if str(v).strip()}}
    try:
        return await _deploy(
            ctx, entry, pending["namespace"], pending["cluster"], given, wait=pending["wait"]
        )
    except CommandError as error:
        # A refusal the user can act on, answered like a command's (not a plugin crash).
        return Reply.fail(str(error), ephemeral=True)


async def _deploy(
    ctx: CommandContext,
    entry: catalog.Entry,
    namespace: str,
    cluster: str | None,
    given: dict[str, Any],
    *,
    wait: bool,
) -> Reply:
    deployer = _deployer(ctx, cluster)
    helm = await _helm_allowed(ctx, entry.template, deployer.cluster)
    # In a thread: a community template's render may take up to its limit (seconds).
    plan = await asyncio.to_thread(
        functools.partial(deployer.plan, entry, namespace, given, helm_allowed=helm)
    )
    outcome = await deployer.deploy(plan)
    waiting: list[str] = []
    if wait:
        waiting = await wait_ready(
            ctx.kubernetes,
            deployer.cluster,
            namespace,
            plan.set_id,
            timeout=float(ctx.config.get("ready_timeout", 300)),
            progress=deployer.progress,
        )
    release = outcome.release
    try:
        steps = await asyncio.to_thread(
            post_install,
            entry.template,
            plan.values.public(),
            release.release,
            namespace,
            limits=deployer.limits_for(entry),
        )
    except TemplateError as error:
        # Deployed already: a next-steps text that will not render must not hide that.
        steps = [str(error)]
    note = _private_note(entry.template, outcome, steps)
    delivered = ""
    if note is not None:
        if ctx.invocation.frontend == "discord":
            # A DM, not the channel: credentials must not stay in the channel's history.
            await ctx.plugin.notifier.notify(note, user=ctx.user_id)
            delivered = DM_NOTE
        elif outcome.generated:
            # The console is the user's own terminal: show them there, marked private.
            await ctx.send(note)
            delivered = "shown above, only to you"
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
                + ([Field("Credentials", delivered)] if outcome.generated else [])
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


async def outdated(ctx: CommandContext) -> Reply:
    """Deployed releases whose template has a newer version, with what an update changes."""
    from clustercord_builtins.templates.outdated import outdated as find_outdated

    deployer = _deployer(ctx)
    found, orphans = await find_outdated(deployer, ctx.store)
    rows = [
        [
            f"{c.release.namespace}/{c.release.release}",
            c.release.template,
            c.release.version,
            c.latest,
            c.summary(),
        ]
        for c in found
    ]
    if found:
        text = (
            f"{len(found)} deployments on {deployer.cluster} have a newer template version; "
            "/template update deployment:<namespace/name> applies it."
        )
    else:
        text = f"Every deployment on {deployer.cluster} runs its template's latest version."
    if orphans:
        text += " No longer in the catalog: " + ", ".join(orphans) + "."
    return Reply(
        text=text,
        tables=[
            Table(
                ["Deployment", "Template", "Deployed", "Latest", "Changes"],
                rows,
                title=f"{len(rows)} outdated deployments",
            )
        ]
        if rows
        else [],
        data={"outdated": [c.as_dict() for c in found], "orphans": orphans},
    )


async def update(ctx: CommandContext) -> Reply:
    deployer = _deployer(ctx)
    release = await deployer.find(ctx.options["deployment"])
    entry = catalog.find(ctx.store, release.template)
    catalog.deployable(entry)
    helm = await _helm_allowed(ctx, entry.template, deployer.cluster)
    outcome = await deployer.update(release, entry, _vars(ctx), helm_allowed=helm)
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
