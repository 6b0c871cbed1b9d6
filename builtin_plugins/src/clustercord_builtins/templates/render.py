"""Rendering a template into Kubernetes objects.

Manifests are Jinja2 sources rendered in a :class:`jinja2.sandbox.SandboxedEnvironment`
(a community template cannot reach Python internals) with ``StrictUndefined`` (a typo in
a variable name is an error, never an empty string). Shared building blocks live in
``catalog/_lib`` and are importable by every template (``{% import "lib.j2" as lib %}``).
Helm charts are rendered by the ``helm`` binary itself (see :mod:`.charts`), only when the
caller has checked that the user may (``helm_allowed``), or refused when it is missing.

What a hostile template or variable value cannot do here:

- **Add keys or documents through a variable.** Every string value reaches Jinja as a
  :class:`Var`; the environment's ``finalize`` writes a ``Var`` that is not plain text
  (letters, digits, spaces and ``_./+=@~-``) as a double-quoted YAML scalar in which every
  other character is a ``\\u`` escape: no newline, quote, colon, comma, bracket or ``#`` of
  the value reaches the YAML. A value that lost its ``Var`` on the way (``v ~ "x"``,
  ``v | upper``) is caught by a second render with each such value made plain (its other
  characters replaced by ``_``): the documents, kinds and keys of both renders must be the
  same, or the render is refused naming the variables.
- **Blow up through YAML aliases.** Rendered YAML is read by a loader that refuses aliases
  (``*name``) and merge keys (``<<``): 728 bytes of nested aliases expand to gigabytes.
- **Run long or large in the bot.** With ``limits`` (community templates), the Jinja2 render,
  the YAML parsing, and the caller's checks (``check``: schemas, policy) run in the bounded
  child of :mod:`.limits`; only plain, alias-free objects come back.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from clustercord_builtins.templates import charts
from clustercord_builtins.templates.kinds import namespaced
from clustercord_builtins.templates.limits import RenderLimits, run_limited
from clustercord_builtins.templates.template import Template, TemplateError

LIBRARY = Path(__file__).with_name("catalog") / "_lib"
MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "clustercord"
# libyaml when present: parsing the rendered YAML is most of a render's time.
_BASE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
# Rendered text beyond this is refused: curated templates render to tens of kilobytes, and
# the parent would otherwise parse whatever a hostile template produced within its limits.
MAX_RENDERED = 16 * 2**20
NAMESPACE = re.compile(r"^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$")
_MERGE_TAG = "tag:yaml.org,2002:merge"
ALIASES_REFUSED = (
    "YAML aliases (*name) are not accepted in templates: write the value out "
    "(aliases let a few hundred bytes expand to gigabytes)"
)
MERGE_REFUSED = "YAML merge keys (<<) are not accepted in templates: write the keys out"


class _Loader(_BASE_LOADER):  # type: ignore[misc,valid-type]
    """The safe loader, refusing aliases and merge keys.

    An alias makes the composer hand the constructor a node it has constructed already; a
    merge key copies another mapping's entries before construction. Both are refused at the
    first occurrence, before anything is expanded (the composer itself keeps one node per
    anchor, so reading up to there costs the size of the text)."""

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        if node in self.constructed_objects or node in self.recursive_objects:
            raise yaml.constructor.ConstructorError(
                None, None, ALIASES_REFUSED, getattr(node, "start_mark", None)
            )
        return super().construct_object(node, deep)

    def flatten_mapping(self, node: Any) -> None:
        for key, _ in node.value:
            if key.tag == _MERGE_TAG:
                raise yaml.constructor.ConstructorError(
                    None, None, MERGE_REFUSED, getattr(key, "start_mark", None)
                )
        super().flatten_mapping(node)


def load_documents(text: str) -> list[Any]:
    """The documents of a YAML stream, aliases and merge keys refused (``yaml.YAMLError``)."""
    return list(yaml.load_all(text, Loader=_Loader))


# -- variables as data ------------------------------------------------------------------
class Var(str):
    """A string that came from a variable (or a user's option): data, never YAML syntax."""

    __slots__ = ()

    def __reduce__(self) -> tuple[Any, ...]:
        return (Var, (str(self),))


_PLAIN = re.compile(r"^[A-Za-z0-9_./][A-Za-z0-9_./+=@~ -]*$")
_KEEP = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 _./+=@~-")


def is_plain(text: str) -> bool:
    """Whether ``text`` can stand in YAML as it is, in any position, without adding
    structure: letters, digits, spaces and ``_./+=@~-``, not starting with a space or ``-``."""
    return text == "" or (_PLAIN.match(text) is not None and not text.endswith(" "))


def yaml_scalar(text: str) -> str:
    """``text`` as a double-quoted YAML scalar made of plain characters and ``\\u`` escapes
    only: it holds no quote, newline, colon, comma, bracket or ``#``, so even written
    inside quotes or after other text by a template it cannot close anything or add a key
    (at worst the YAML is invalid and the render is refused)."""
    out = []
    for char in text:
        if char in _KEEP:
            out.append(char)
        elif ord(char) <= 0xFFFF:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


def _finalize(value: Any) -> Any:
    if isinstance(value, Var) and not is_plain(value):
        return yaml_scalar(value)
    return value


def as_data(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with every string (also in lists) marked as a :class:`Var`."""

    def mark(value: Any) -> Any:
        if isinstance(value, str) and not isinstance(value, Var):
            return Var(value)
        if isinstance(value, list | tuple):
            return [mark(v) for v in value]
        return value

    return {k: mark(v) for k, v in values.items()}


def neutral(values: Mapping[str, Any]) -> dict[str, Any] | None:
    """``values`` with every character of a string that is not plain replaced by ``_``, or
    ``None`` when every value is plain already (nothing a value holds can be structure)."""
    changed = False
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, str) and not is_plain(value):
            plain = "".join(c if c in _KEEP else "_" for c in value).strip(" ")
            if plain.startswith("-"):
                plain = "_" + plain[1:]
            out[key] = Var(plain or "_")
            changed = True
        else:
            out[key] = value
    return out if changed else None


def _shape(node: Any, path: str = "") -> set[str]:
    """Every key path of a document (list items as ``[]``)."""
    found = {path}
    if isinstance(node, dict):
        for key, value in node.items():
            found |= _shape(value, f"{path}.{key}")
    elif isinstance(node, list):
        for value in node:
            found |= _shape(value, f"{path}[]")
    return found


def shape(documents: list[Any]) -> list[tuple[Any, frozenset[str]]]:
    """What a value may never change: how many documents, of which kinds, with which keys."""
    return [
        ((d.get("kind") if isinstance(d, dict) else type(d).__name__), frozenset(_shape(d)))
        for d in documents
        if d is not None
    ]


@dataclass(frozen=True)
class Rendered:
    """The objects of one render, each with the manifest it came from; ``report`` is what
    the render's ``check`` answered (the policy report), when it had one."""

    objects: list[dict[str, Any]]
    sources: list[str]
    report: Any = field(default=None, compare=False)

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
def _environment(quoting: bool = True) -> Any:
    """The manifests' environment (``quoting``: variables written as YAML data), or the one of
    chat texts (next steps), where a value is shown as it is."""
    from jinja2 import FunctionLoader, StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(
        loader=FunctionLoader(_load),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        finalize=_finalize if quoting else None,
    )
    env.filters["b64encode"] = _b64encode
    return env


def _register(source: str) -> str:
    key = "manifest-" + hashlib.sha256(source.encode()).hexdigest()
    _SOURCES.setdefault(key, source)
    return key


@dataclass(frozen=True)
class _Job:
    """Everything a render needs, picklable for the bounded child."""

    manifests: list[tuple[str, str]]
    context: dict[str, Any]
    charts: list[str | None]
    values: dict[str, Any]
    release: str
    namespace: str
    neutral_context: dict[str, Any] | None = None
    neutral_values: dict[str, Any] | None = None
    suspects: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Texts:
    manifests: list[tuple[str, str]]
    chart_values: list[str | None]
    neutral_manifests: list[tuple[str, str]] | None = None
    neutral_chart_values: list[str | None] | None = None


def render_manifests(
    template: Template,
    values: Mapping[str, Any],
    *,
    release: str,
    namespace: str,
    limits: RenderLimits | None = None,
    helm_allowed: bool = False,
    check: Callable[[list[dict[str, Any]]], Any] | None = None,
) -> Rendered:
    """Render every manifest and every Helm chart of ``template``; errors name the manifest.

    With ``limits`` (community templates) the Jinja2 part, the YAML parsing and ``check``
    run in a child process bounded in time and memory (:mod:`.limits`). ``check`` must be a
    module-level function (or a ``functools.partial`` of one); it gets the objects and its
    answer is ``Rendered.report``. Helm runs only with ``helm_allowed``: the caller checked
    that the user may (see ``commands.helm_access``).
    """
    if not NAMESPACE.match(namespace):
        raise TemplateError(
            f"namespace {namespace[:80]!r} is not a Kubernetes namespace name (lower case "
            "letters, digits and '-', at most 63)"
        )
    if template.helm_charts and not helm_allowed:
        raise TemplateError(
            f"template {template.name} renders Helm charts, and helm runs only for users "
            "allowed to submit templates (checked with the cluster first)"
        )
    data = as_data(values)
    base = {
        "release": release,
        "namespace": namespace,
        "template": {"name": template.name, "version": template.version},
    }
    plain = neutral(data)
    suspects = tuple(sorted(k for k in data if plain is not None and plain[k] is not data[k]))
    job = _Job(
        manifests=[(m.name, m.source) for m in template.manifests],
        context={**data, **base},
        charts=[_chart_values_source(template, chart) for chart in template.helm_charts],
        values=data,
        release=release,
        namespace=namespace,
        neutral_context=None if plain is None else {**plain, **base},
        neutral_values=plain,
        suspects=suspects,
    )
    if not template.helm_charts:
        if limits is None:
            return render_whole(job, check)
        return run_limited(template.name, limits, render_whole, job, check)  # type: ignore[no-any-return]
    if limits is None:
        texts = render_texts(job)
    else:
        texts = run_limited(template.name, limits, render_texts, job)
    outputs = [
        _helm(template, chart, texts.chart_values[index], release=release, namespace=namespace)
        for index, chart in enumerate(template.helm_charts)
    ]
    labels = [
        f"helm_charts[{index}] {chart['chart']}" for index, chart in enumerate(template.helm_charts)
    ]
    if limits is None:
        return assemble(job, texts, outputs, labels, check)
    return run_limited(template.name, limits, assemble, job, texts, outputs, labels, check)  # type: ignore[no-any-return]


def render_whole(job: _Job, check: Callable[[list[dict[str, Any]]], Any] | None) -> Rendered:
    """A template without charts, start to end (in the bounded child for community ones)."""
    return assemble(job, render_texts(job), [], [], check)


def _render_one(env: Any, name: str, source: str, context: dict[str, Any]) -> str:
    from jinja2 import TemplateError as JinjaError
    from jinja2 import TemplateSyntaxError, UndefinedError

    try:
        return str(env.get_template(_register(source)).render(context))
    except TemplateSyntaxError as error:
        where = name if (error.name or "").startswith("manifest-") else error.name
        raise TemplateError(f"{where}: line {error.lineno}: {error.message}") from None
    except UndefinedError as error:
        raise TemplateError(
            f"{name}: {error.message} (a variable the template does not declare?)"
        ) from None
    except JinjaError as error:
        raise TemplateError(f"{name}: {error}") from None


def _render_all(
    job: _Job, context: dict[str, Any], values: dict[str, Any]
) -> tuple[list[tuple[str, str]], list[str | None]]:
    env = _environment()
    texts = []
    size = 0
    for name, source in job.manifests:
        text = _render_one(env, name, source, context)
        size += len(text)
        if size > MAX_RENDERED:
            raise TemplateError(
                f"{name}: the rendered manifests pass {MAX_RENDERED // 2**20} MB; "
                "a template this large is refused"
            )
        texts.append((name, text))
    chart_values = [
        None if source is None else _render_one(env, "chart values", source, values)
        for source in job.charts
    ]
    return texts, chart_values


def render_texts(job: _Job) -> _Texts:
    """The Jinja2 part: each manifest's text and each chart's values text, and the same
    with the variables made plain when a value is not (for :func:`assemble`'s comparison)."""
    manifests, chart_values = _render_all(job, job.context, job.values)
    if job.neutral_context is None or job.neutral_values is None:
        return _Texts(manifests, chart_values)
    plain, plain_values = _render_all(job, job.neutral_context, job.neutral_values)
    # Chart values are compared here, before helm ever reads them; manifests in assemble().
    for index, values_text in enumerate(chart_values):
        if values_text is not None:
            where = f"helm_charts[{index}].values"
            other = plain_values[index] or ""
            _compare(job, where, _documents(values_text, where), _documents(other, where))
    return _Texts(manifests, chart_values, plain, plain_values)


def _compare(job: _Job, what: str, real: list[Any], plain: list[Any]) -> None:
    if shape(real) != shape(plain):
        names = ", ".join(job.suspects) or "a variable"
        raise TemplateError(
            f"{what}: the value of {names} changes the structure of the rendered YAML (a new "
            "document, kind or key): variables are data, never YAML; nothing was deployed"
        )


def assemble(
    job: _Job,
    texts: _Texts,
    chart_outputs: list[str],
    chart_labels: list[str],
    check: Callable[[list[dict[str, Any]]], Any] | None,
) -> Rendered:
    """Parse the rendered texts (aliases refused), compare them with the plain render,
    stamp the objects and run ``check`` on them."""
    objects: list[dict[str, Any]] = []
    sources: list[str] = []
    for index, (name, text) in enumerate(texts.manifests):
        documents = _documents(text, name)
        if texts.neutral_manifests is not None:
            _compare(job, name, documents, _documents(texts.neutral_manifests[index][1], name))
        found = objects_of(documents, name)
        objects += found
        sources += [name] * len(found)
    for label, output in zip(chart_labels, chart_outputs, strict=True):
        found = objects_of(_documents(output, f"chart {label}"), f"chart {label}")
        objects += found
        sources += [label] * len(found)
    for obj in objects:
        stamp(obj, release=job.release, namespace=job.namespace)
    report = check(objects) if check is not None else None
    return Rendered(objects, sources, report)


def render_lines(lines: list[str], context: dict[str, Any]) -> list[str]:
    """Short Jinja2 texts (next steps) filled in; a line that does not render stays as written."""
    from jinja2 import TemplateError as JinjaError

    env = _environment(quoting=False)
    out = []
    for line in lines:
        try:
            out.append(env.from_string(line).render(context))
        except JinjaError:
            out.append(line)
    return out


def _documents(text: str, source: str) -> list[Any]:
    try:
        return load_documents(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise TemplateError(
            f"{source}:{where}: the rendered YAML is invalid: {str(problem)[:300]}"
        ) from None


def objects_of(documents: list[Any], source: str) -> list[dict[str, Any]]:
    """The Kubernetes objects among ``documents``; empty documents are skipped."""
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
                f"{source}: document {index + 1} ({str(document['kind'])[:60]}) has no "
                "metadata.name"
            )
        objects.append(document)
    return objects


def parse_objects(text: str, source: str) -> list[dict[str, Any]]:
    """The Kubernetes objects in a YAML stream; empty documents are skipped."""
    return objects_of(_documents(text, source), source)


def stamp(obj: dict[str, Any], *, release: str, namespace: str) -> None:
    """Put ``obj`` in the namespace and mark it as ours (the recommended labels)."""
    meta = obj["metadata"]
    if namespaced(obj):
        meta["namespace"] = namespace
    else:  # cluster-wide (a CRD, a ClusterRole): a namespace there is an error
        meta.pop("namespace", None)
    labels = meta.setdefault("labels", {})
    if not isinstance(labels, dict):
        raise TemplateError(f"{obj['kind']}/{meta.get('name')}: metadata.labels is not a map")
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
    return charts.helm_binary()


def _helm(
    template: Template,
    chart: Mapping[str, Any],
    values_text: str | None,
    *,
    release: str,
    namespace: str,
) -> str:
    """``helm template`` of one chart with its rendered values file (if any): its output."""
    name = f"{chart['chart']} {chart['version']}"
    try:
        charts.check_entry(chart)
    except charts.ChartError as error:
        raise TemplateError(f"template {template.name}: helm_charts: {error}") from None
    helm = helm_binary()
    if helm is None:
        raise TemplateError(
            f"template {template.name} needs helm to render chart {name}, and helm is not "
            "installed here (https://helm.sh/docs/intro/install/)"
        )
    try:
        code, stdout, stderr = charts.run_helm(
            helm, chart, values_text, release=release, namespace=namespace
        )
    except charts.ChartError as error:
        raise TemplateError(str(error)) from None
    except subprocess.TimeoutExpired:
        raise TemplateError(
            f"helm took longer than {charts.TIMEOUT:g} s to render chart {name}"
        ) from None
    except OSError as error:
        raise TemplateError(f"helm could not run for chart {name}: {error}") from None
    if code != 0:
        raise TemplateError(f"helm could not render chart {name}: {stderr.strip()[:500]}")
    return stdout
