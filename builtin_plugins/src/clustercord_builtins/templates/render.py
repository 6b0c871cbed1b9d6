"""Rendering a template into Kubernetes objects.

Manifests are Jinja2 sources rendered in a :class:`jinja2.sandbox.SandboxedEnvironment`
(a community template cannot reach Python internals) with ``StrictUndefined`` (a typo in
a variable name is an error, never an empty string). Shared building blocks live in
``catalog/_lib`` and are importable by every template (``{% import "lib.j2" as lib %}``).
Helm charts are rendered by the ``helm`` binary itself, or refused when it is missing.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from clustercord_builtins.templates.limits import RenderLimits, run_limited
from clustercord_builtins.templates.template import Template, TemplateError

LIBRARY = Path(__file__).with_name("catalog") / "_lib"
MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "clustercord"
# libyaml when present: parsing the rendered YAML is most of a render's time.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
# Rendered text beyond this is refused: curated templates render to tens of kilobytes, and
# the parent would otherwise parse whatever a hostile template produced within its limits.
MAX_RENDERED = 16 * 2**20


@dataclass(frozen=True)
class Rendered:
    """The objects of one render, each with the manifest it came from."""

    objects: list[dict[str, Any]]
    sources: list[str]

    def yaml(self) -> str:
        return yaml.dump_all(self.objects, Dumper=_DUMPER, sort_keys=False)

    def digest(self) -> str:
        payload = json.dumps(self.objects, sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()


@functools.cache
def _library() -> dict[str, str]:
    if not LIBRARY.is_dir():
        return {}
    return {p.name: p.read_text("utf-8") for p in sorted(LIBRARY.glob("*.j2"))}


def _b64encode(value: Any) -> str:
    return base64.b64encode(str(value).encode()).decode()


# One environment for every render, so the shared library is compiled once per process.
# Manifests are registered under a key made of their content's digest: two templates may
# both have an ``app.yaml``, and a changed source is a new key (never a stale compile).
_SOURCES: dict[str, str] = {}


def _load(name: str) -> str | None:
    return _SOURCES.get(name, _library().get(name))


@functools.cache
def _environment() -> Any:
    from jinja2 import FunctionLoader, StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(
        loader=FunctionLoader(_load),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )
    env.filters["b64encode"] = _b64encode
    return env


def _register(source: str) -> str:
    key = "manifest-" + hashlib.sha256(source.encode()).hexdigest()
    _SOURCES.setdefault(key, source)
    return key


def render_manifests(
    template: Template,
    values: Mapping[str, Any],
    *,
    release: str,
    namespace: str,
    limits: RenderLimits | None = None,
) -> Rendered:
    """Render every manifest and every Helm chart of ``template``; errors name the manifest.

    With ``limits`` (community templates) the Jinja2 part runs in a child process bounded
    in time and memory; see :mod:`clustercord_builtins.templates.limits`.
    """
    context = {
        **values,
        "release": release,
        "namespace": namespace,
        "template": {"name": template.name, "version": template.version},
    }
    manifests = [(m.name, m.source) for m in template.manifests]
    charts = [_chart_values_source(template, chart) for chart in template.helm_charts]
    args = (manifests, context, charts, dict(values))
    if limits is None:
        parsed, chart_values = render_sources(*args)
    else:
        parsed, chart_values = run_limited(template.name, limits, render_sources, *args)
    objects: list[dict[str, Any]] = []
    sources: list[str] = []
    for name, found in parsed:
        objects += found
        sources += [name] * len(found)
    for index, chart in enumerate(template.helm_charts):
        for obj in render_chart(
            template, chart, chart_values[index], release=release, namespace=namespace
        ):
            objects.append(obj)
            sources.append(f"helm_charts[{index}] {chart['chart']}")
    for obj in objects:
        stamp(obj, release=release, namespace=namespace)
    return Rendered(objects, sources)


def render_sources(
    manifests: list[tuple[str, str]],
    context: dict[str, Any],
    charts: list[str | None],
    values: dict[str, Any],
) -> tuple[list[tuple[str, list[dict[str, Any]]]], list[str | None]]:
    """The Jinja2 part of a render: each manifest's objects, each chart's values text.

    Module-level and free of I/O so that :func:`run_limited` can run it in a child.
    """
    from jinja2 import TemplateError as JinjaError
    from jinja2 import TemplateSyntaxError, UndefinedError

    env = _environment()
    parsed = []
    size = 0
    for name, source in manifests:
        try:
            text = env.get_template(_register(source)).render(context)
        except TemplateSyntaxError as error:
            where = name if (error.name or "").startswith("manifest-") else error.name
            raise TemplateError(f"{where}: line {error.lineno}: {error.message}") from None
        except UndefinedError as error:
            raise TemplateError(
                f"{name}: {error.message} (a variable the template does not declare?)"
            ) from None
        except JinjaError as error:
            raise TemplateError(f"{name}: {error}") from None
        size += len(text)
        if size > MAX_RENDERED:
            raise TemplateError(
                f"{name}: the rendered manifests pass {MAX_RENDERED // 2**20} MB; "
                "a template this large is refused"
            )
        parsed.append((name, parse_objects(text, name)))
    chart_values = [
        None if source is None else env.from_string(source).render(values) for source in charts
    ]
    return parsed, chart_values


def render_lines(lines: list[str], context: dict[str, Any]) -> list[str]:
    """Short Jinja2 texts (next steps) filled in; a line that does not render stays as written."""
    from jinja2 import TemplateError as JinjaError

    env = _environment()
    out = []
    for line in lines:
        try:
            out.append(env.from_string(line).render(context))
        except JinjaError:
            out.append(line)
    return out


def parse_objects(text: str, source: str) -> list[dict[str, Any]]:
    """The Kubernetes objects in a YAML stream; empty documents are skipped."""
    try:
        documents = list(yaml.load_all(text, Loader=_LOADER))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise TemplateError(f"{source}:{where}: the rendered YAML is invalid: {problem}") from None
    objects = []
    for index, document in enumerate(documents):
        if document is None:
            continue
        if not isinstance(document, dict) or "kind" not in document:
            raise TemplateError(
                f"{source}: document {index + 1} is not a Kubernetes object (no kind)"
            )
        if not isinstance(document.get("metadata"), dict) or not document["metadata"].get("name"):
            raise TemplateError(
                f"{source}: document {index + 1} ({document['kind']}) has no metadata.name"
            )
        objects.append(document)
    return objects


def stamp(obj: dict[str, Any], *, release: str, namespace: str) -> None:
    """Put ``obj`` in the namespace and mark it as ours (the recommended labels)."""
    meta = obj["metadata"]
    meta["namespace"] = namespace
    labels = meta.setdefault("labels", {})
    labels[MANAGED_BY] = MANAGER
    labels.setdefault("app.kubernetes.io/instance", release)


def _chart_values_source(template: Template, chart: Mapping[str, Any]) -> str | None:
    """The Jinja2 source of a chart's values file, if it has one."""
    if not chart.get("values"):
        return None
    # A curated template names a file beside template.json; a submitted one inlines it.
    source: str = chart["values"]
    if template.folder is not None and (template.folder / source).is_file():
        source = (template.folder / source).read_text("utf-8")
    return source


def helm_binary() -> str | None:
    return shutil.which("helm")


def render_chart(
    template: Template,
    chart: Mapping[str, Any],
    values_text: str | None,
    *,
    release: str,
    namespace: str,
) -> list[dict[str, Any]]:
    """``helm template`` of one chart with its rendered values file (if any)."""
    helm = helm_binary()
    name = f"{chart['chart']} {chart['version']}"
    if helm is None:
        raise TemplateError(
            f"template {template.name} needs helm to render chart {name}, and helm is not "
            "installed here (https://helm.sh/docs/intro/install/)"
        )
    command = [
        helm,
        "template",
        release,
        chart["chart"],
        "--repo",
        chart["repo"],
        "--version",
        chart["version"],
        "--namespace",
        namespace,
    ]
    with tempfile.TemporaryDirectory() as scratch:
        if values_text is not None:
            values_file = Path(scratch) / "values.yaml"
            values_file.write_text(values_text)
            command += ["--values", str(values_file)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise TemplateError(f"helm could not render chart {name}: {done.stderr.strip()[:500]}")
    return parse_objects(done.stdout, f"chart {name}")
