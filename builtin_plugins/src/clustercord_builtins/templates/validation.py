"""Static validation of a template: schema, render with defaults, Kubernetes schemas, policy.

Kubernetes schemas come from kubernetes-validate in strict mode (unknown fields are
errors). Its ``validate()`` re-reads the definitions file on every call; the same files
are loaded here once per process, which makes checking the whole catalog fast enough
to run on every submit and in CI.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from clustercord_builtins.templates import policy
from clustercord_builtins.templates.kinds import describe
from clustercord_builtins.templates.limits import RenderLimits
from clustercord_builtins.templates.render import Rendered, render_manifests
from clustercord_builtins.templates.template import Template, TemplateError, bounded, json_path
from clustercord_builtins.templates.variables import resolve

KUBERNETES_VERSION = "1.30"


class ManifestError(TemplateError):
    """A rendered object that fails its Kubernetes schema."""


@functools.cache
def _schema_dir(version: str) -> str:
    from kubernetes_validate.utils import all_versions, major_minor

    wanted = tuple(int(p) for p in major_minor(version).split("."))
    # Compared as numbers (the library compares strings, and "1.9" > "1.30").
    known = [
        v for v in all_versions() if tuple(int(p) for p in major_minor(v).split(".")) <= wanted
    ]
    if not known:
        raise ManifestError(f"kubernetes-validate has no schemas for Kubernetes {version}")
    return f"v{known[-1]}-local-strict"


@functools.cache
def _validator(version: str, api_version: str, kind: str) -> Any:
    import jsonschema
    from kubernetes_validate.utils import schema_contents
    from referencing import Registry, Resource

    folder = _schema_dir(version)
    group = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = schema_contents(
            f"kubernetes-json-schema/{folder}/{kind.lower()}-{group}.json", version
        )
    except FileNotFoundError:
        return None
    definitions = _definitions(folder, version)
    registry = Resource.from_contents(schema) @ Registry()
    registry = definitions @ registry
    return jsonschema.Draft202012Validator(schema, registry=registry)


@functools.cache
def _definitions(folder: str, version: str) -> Any:
    from kubernetes_validate.utils import schema_contents
    from referencing import Resource

    return Resource.from_contents(
        schema_contents(f"kubernetes-json-schema/{folder}/_definitions.json", version)
    )


def validate_object(obj: dict[str, Any], version: str = KUBERNETES_VERSION) -> None:
    """Raise :class:`ManifestError` naming the object and the path of the first problem."""
    validator = _validator(version, str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
    if validator is None:
        raise ManifestError(
            f"{describe(obj)}: no Kubernetes {version} schema for "
            f"{obj.get('apiVersion')}/{obj.get('kind')}"
        )
    error = next(
        iter(sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.path)))), None
    )
    if error is not None:
        raise ManifestError(
            f"{describe(obj)}: {json_path(error.absolute_path)}: {bounded(error.message)} "
            f"(Kubernetes {version} schema)"
        )


@dataclass
class Checked:
    """A template that passed its static checks, rendered with its defaults."""

    template: Template
    rendered: Rendered
    report: policy.Report
    warnings: list[str] = field(default_factory=list)


def inspect(
    objects: list[dict[str, Any]], *, features: tuple[str, ...], schemas: bool = False
) -> policy.Report:
    """What the render's ``check`` runs (in the bounded child for community templates):
    with ``schemas`` every object against its Kubernetes schema and no object twice; then
    the security policy, whose report is returned."""
    if schemas:
        for obj in objects:
            validate_object(obj)
        names = [(o["kind"], o["metadata"]["name"]) for o in objects]
        duplicates = sorted({f"{k}/{n}" for k, n in names if names.count((k, n)) > 1})
        if duplicates:
            raise ManifestError(f"objects rendered twice: {', '.join(duplicates)}")
    return policy.check(objects, features)


def checks(template: Template, *, schemas: bool = False) -> Callable[..., policy.Report]:
    """The ``check`` of a render of ``template``: :func:`inspect`, picklable for the child."""
    return functools.partial(inspect, features=template.features, schemas=schemas)


def check_template(
    template: Template,
    *,
    namespace: str = "validate",
    limits: RenderLimits | None = None,
    helm_allowed: bool = False,
) -> Checked:
    """Render with defaults (secrets generated), validate every object, run the policy.

    ``limits`` bounds the render, the parsing and these checks (a submitted template: all of
    it in the child process); the curated catalog is checked in-process. ``helm_allowed``:
    the caller checked that the user may make helm run (charts are refused otherwise).
    """
    values = resolve(template, {}, redact_secrets=False)
    rendered = render_manifests(
        template,
        values.values,
        release=template.name,
        namespace=namespace,
        limits=limits,
        helm_allowed=helm_allowed,
        check=checks(template, schemas=True),
    )
    report = rendered.report
    return Checked(template, rendered, report, [str(w) for w in report.warnings])
