"""Chaos Mesh and Litmus objects checked against their own CRD schemas, vendored from a named
release (``crds/README.md``), before anything is sent to a cluster.

A CRD's ``openAPIV3Schema`` is JSON Schema with Kubernetes' extensions; it is translated once:
``x-kubernetes-int-or-string`` becomes "integer or string", ``nullable`` admits ``null``, and
an object with ``properties`` and neither ``additionalProperties`` nor
``x-kubernetes-preserve-unknown-fields`` refuses unknown fields (what ``kubectl apply`` does
with strict field validation, its default). A Litmus workflow is an Argo Workflow whose
templates carry ChaosEngine and ChaosExperiment manifests as text: those are parsed and
checked too, each error naming its place
(``spec.templates[1].resource.manifest: spec.engineState``).
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import jsonschema
import yaml

VERSIONS = {"chaos-mesh": "v2.8.3", "litmus": "3.31.0"}
FOLDERS = {"chaos-mesh": "chaos-mesh-v2.8.3", "litmus": "litmus-3.31.0"}
MAX_ERRORS = 5


MAX_BYTES = 512 * 1024
MAX_OBJECTS = 20
CRD_RESOURCE = "customresourcedefinitions.apiextensions.k8s.io"


class InteropError(ValueError):
    """An object their CRDs refuse; the message lists where and why."""


def read_objects(data: bytes) -> list[dict[str, Any]]:
    """The YAML documents of an uploaded file, read as strictly as experiment files (size,
    nesting, aliases), at most ``MAX_OBJECTS``."""
    from clustercord_builtins.chaos.plan_file import PlanError, _depth

    if len(data) > MAX_BYTES:
        raise InteropError(f"the file has {len(data):,} bytes; at most {MAX_BYTES:,}")
    try:
        documents = [d for d in yaml.safe_load_all(data.decode("utf-8")) if d is not None]
    except UnicodeDecodeError as error:
        raise InteropError(f"the file is not UTF-8 text (byte {error.start})") from None
    except RecursionError:
        raise InteropError("the file nests too deep") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InteropError(f"the file is not YAML{where}") from None
    if not documents:
        raise InteropError("the file holds no object")
    if len(documents) > MAX_OBJECTS:
        raise InteropError(f"the file holds {len(documents)} objects; at most {MAX_OBJECTS}")
    for index, document in enumerate(documents):
        try:
            _depth(document, f"document {index + 1}", 0)
        except PlanError as error:
            raise InteropError(str(error)) from None
        if not isinstance(document, dict):
            raise InteropError(f"document {index + 1}: an object with apiVersion and kind")
    return documents


def resource_of(project: str, obj: dict[str, Any]) -> tuple[str, str]:
    """(``plural.group`` for the API, the CRD's name) of a validated object."""
    group = str(obj["apiVersion"]).rpartition("/")[0]
    crd = crds(project)[(group, str(obj["kind"]))]
    return crd["metadata"]["name"], crd["metadata"]["name"]


@functools.cache
def crds(project: str) -> dict[tuple[str, str], dict[str, Any]]:
    """The vendored CRDs of ``project`` by (group, kind)."""
    folder = resources.files("clustercord_builtins.chaos").joinpath("crds", FOLDERS[project])
    found = {}
    for item in folder.iterdir():
        if item.name.endswith(".yaml"):
            crd = yaml.safe_load(item.read_text("utf-8"))
            found[(crd["spec"]["group"], crd["spec"]["names"]["kind"])] = crd
    return found


def kinds(project: str) -> list[str]:
    return sorted(kind for _, kind in crds(project))


@functools.cache
def _validator(project: str, group: str, kind: str, version: str) -> jsonschema.Draft7Validator:
    crd = crds(project)[(group, kind)]
    served = [v for v in crd["spec"]["versions"] if v["name"] == version and v.get("served")]
    if not served:
        known = ", ".join(v["name"] for v in crd["spec"]["versions"])
        raise InteropError(
            f"apiVersion: {group}/{version} is not served by {kind} (versions: {known})"
        )
    schema = _json_schema(served[0]["schema"]["openAPIV3Schema"])
    return jsonschema.Draft7Validator(schema)


def _json_schema(node: Any) -> Any:
    if isinstance(node, list):
        return [_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {
        k: _json_schema(v)
        for k, v in node.items()
        if not k.startswith("x-kubernetes-") and k != "nullable"
    }
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if (
        "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def validate(project: str, obj: Any, where: str = "") -> None:
    """Raise ``InteropError`` listing where ``obj`` breaks its CRD (of ``project``)."""
    prefix = f"{where}: " if where else ""
    if not isinstance(obj, dict):
        raise InteropError(f"{prefix}an object with apiVersion and kind")
    api_version, kind = str(obj.get("apiVersion", "")), str(obj.get("kind", ""))
    group, _, version = api_version.rpartition("/")
    if (group, kind) not in crds(project):
        raise InteropError(
            f"{prefix}{kind or '(no kind)'} of {api_version or '(no apiVersion)'} is not a "
            f"{project} {VERSIONS[project]} kind (kinds: {', '.join(kinds(project))})"
        )
    errors = sorted(
        _validator(project, group, kind, version).iter_errors(obj), key=lambda e: list(e.path)
    )
    if errors:
        lines = [f"{prefix}{_path(e.path) or kind}: {_message(e)}" for e in errors[:MAX_ERRORS]]
        more = f" (and {len(errors) - MAX_ERRORS} more)" if len(errors) > MAX_ERRORS else ""
        raise InteropError(
            f"{kind} refused by the {project} {VERSIONS[project]} schema: "
            + "; ".join(lines)
            + more
        )


def validate_litmus_workflow(obj: Any) -> list[dict[str, Any]]:
    """Check an Argo Workflow and the Litmus manifests its templates carry; returns those
    manifests (ChaosEngines, ChaosExperiments)."""
    validate("litmus", obj)
    found = []
    templates = (obj.get("spec") or {}).get("templates") or []
    if not isinstance(templates, list):
        raise InteropError("spec.templates: a list")
    for index, template in enumerate(templates):
        manifest = ((template or {}).get("resource") or {}).get("manifest")
        where = f"spec.templates[{index}].resource.manifest"
        if not isinstance(manifest, str):
            continue
        try:
            inner = yaml.safe_load(manifest)
        except yaml.YAMLError as error:
            raise InteropError(f"{where}: not YAML ({error})") from None
        if isinstance(inner, dict) and str(inner.get("apiVersion", "")).startswith(
            "litmuschaos.io/"
        ):
            validate("litmus", inner, where)
            found.append(inner)
    return found


def _path(path: Any) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _message(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        names = error.message.split("(")[-1].rstrip(")")
        return "unknown field " + names.replace(" was unexpected", "").replace(
            " were unexpected", ""
        )
    return error.message[:200]
