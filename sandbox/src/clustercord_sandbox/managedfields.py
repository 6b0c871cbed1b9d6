"""`metadata.managedFields`: which field manager owns which fields, as the real server records.

Kubernetes tracks ownership with structured-merge-diff (SMD). This module is the part of it
the sandbox needs, driven by the same OpenAPI extensions SMD reads (`x-kubernetes-list-type`,
`x-kubernetes-list-map-keys`, `x-kubernetes-map-type`, and the patch merge key when a list
declares no type):

- a *field set* is a set of paths; a path is a tuple of elements `("f", field)`,
  `("k", '{"name":"web"}')` (an item of a keyed list), `("v", '"x"')` (an item of a set);
- `FieldsV1` is that set as nested objects (`{"f:spec": {"f:replicas": {}}}`), with `"."`
  marking a path that is a member and also has members below it;
- an Update (create, update, patch by any client) gives its manager the fields it added or
  changed and takes them from everyone else; see `record_update`. Server-side apply lives in
  `apply.py` and builds on the same pieces.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .openapi import resolve, schema_for
from .registry import ResourceType

Element = tuple[str, str]
Path = tuple[Element, ...]
FieldSet = set[Path]

# SMD's stripped fields: never owned by anyone (apiVersion, kind and server-set metadata).
_STRIPPED_META = (
    "name",
    "namespace",
    "creationTimestamp",
    "selfLink",
    "uid",
    "generation",
    "managedFields",
    "resourceVersion",
)


# -- schema shapes -------------------------------------------------------------------------------
def list_shape(schema: dict[str, Any] | None) -> tuple[str, tuple[str, ...]]:
    """("atomic" | "set" | "map", map keys) as SMD derives it from an OpenAPI list schema."""
    if not schema:
        return "atomic", ()
    list_type = schema.get("x-kubernetes-list-type")
    if list_type == "map":
        return "map", tuple(schema.get("x-kubernetes-list-map-keys") or ())
    if list_type in ("set", "atomic"):
        return list_type, ()
    if "merge" in str(schema.get("x-kubernetes-patch-strategy", "")).split(","):
        key = schema.get("x-kubernetes-patch-merge-key")
        return ("map", (key,)) if key else ("set", ())
    return "atomic", ()


def atomic_map(schema: dict[str, Any] | None) -> bool:
    return bool(schema) and schema.get("x-kubernetes-map-type") == "atomic"  # type: ignore[union-attr]


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def item_key(item: Any, keys: tuple[str, ...]) -> str:
    """The `k:` element of a keyed list's item (a missing `protocol` key defaults to TCP,
    as the API server's defaulting would have set it)."""
    if not isinstance(item, dict):
        return _compact(item)
    found = {k: item[k] for k in keys if k in item}
    if "protocol" in keys and "protocol" not in found:
        found["protocol"] = "TCP"
    return _compact(found)


# -- walking an object -------------------------------------------------------------------------
@dataclass
class Walk:
    """Every path SMD tracks in an object, with its value; `leaves` compare by value."""

    values: dict[Path, Any] = field(default_factory=dict)
    leaves: set[Path] = field(default_factory=set)
    # Granular maps (labels, annotations, data ...): an Update that creates one owns it too.
    maps: set[Path] = field(default_factory=set)

    def members(self) -> FieldSet:
        return set(self.values)


def walk(obj: Any, schema: dict[str, Any] | None) -> Walk:
    found = Walk()
    _walk(obj, schema, (), found)
    return found


@dataclass(frozen=True, slots=True)
class _Shape:
    """What walking needs from one (sub)schema, worked out once per schema object."""

    atomic_map: bool
    properties: dict[str, Any]
    extra: dict[str, Any] | None  # additionalProperties, when it is a schema
    granular: bool  # a map whose entries are owned one by one (labels, data ...)
    list_kind: str
    list_keys: tuple[str, ...]
    items: dict[str, Any] | None


# Shapes by id() of the schema object; the entry keeps that object alive so its id stays its
# own. Schemas are long-lived (the OpenAPI definitions, a CRD version's schema), so this stays
# as small as the schemas in use; every write walks the same few hundred of them.
_SHAPES: dict[int, tuple[Any, _Shape]] = {}


def _shape(schema: dict[str, Any] | None) -> _Shape:
    cached = _SHAPES.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    resolved = resolve(schema) or {}
    properties = resolved.get("properties") or {}
    extra = resolved.get("additionalProperties")
    list_kind, list_keys = list_shape(resolved)
    items = resolved.get("items")
    shape = _Shape(
        atomic_map=atomic_map(resolved),
        properties=properties,
        extra=extra if isinstance(extra, dict) else None,
        granular=isinstance(extra, dict) or not properties,
        list_kind=list_kind,
        list_keys=list_keys,
        items=items if isinstance(items, dict) else None,
    )
    _SHAPES[id(schema)] = (schema, shape)
    return shape


def _walk(value: Any, schema: dict[str, Any] | None, path: Path, found: Walk) -> None:
    if isinstance(value, dict):
        shape = _shape(schema)
        if shape.atomic_map:
            _leaf(found, path, value)
            return
        properties, extra = shape.properties, shape.extra
        if path and shape.granular:
            found.maps.add(path)
        for key, sub in value.items():
            child = (*path, ("f", key))
            if sub is None or sub == {}:
                _leaf(found, child, sub)  # SMD keeps null and {} as members
                continue
            declared = key in properties
            sub_schema = properties[key] if declared else extra
            _walk(sub, sub_schema if isinstance(sub_schema, dict) else None, child, found)
            if not declared:  # a map entry is a member even when it holds an object
                found.values.setdefault(child, sub)
    elif isinstance(value, list):
        shape = _shape(schema)
        kind = shape.list_kind
        if kind == "atomic":
            _leaf(found, path, value)
            return
        for item in value:
            if kind == "set":
                _leaf(found, (*path, ("v", _compact(item))), item)
                continue
            child = (*path, ("k", item_key(item, shape.list_keys)))
            _walk(item, shape.items, child, found)
            found.values[child] = item
    else:
        _leaf(found, path, value)


def _leaf(found: Walk, path: Path, value: Any) -> None:
    if path:
        found.values[path] = value
        found.leaves.add(path)


@dataclass
class Comparison:
    added: FieldSet
    modified: FieldSet
    removed: FieldSet

    def changed(self) -> FieldSet:
        return self.added | self.modified

    def empty(self) -> bool:
        return not (self.added or self.modified or self.removed)


def compare(old: Walk, new: Walk) -> Comparison:
    """SMD's Compare: paths added, removed, and leaves whose value changed."""
    old_paths, new_paths = set(old.values) | old.maps, set(new.values) | new.maps
    modified = {p for p in new.leaves & old.leaves if new.values[p] != old.values[p]}
    return Comparison(new_paths - old_paths, modified, old_paths - new_paths)


def view(rt: ResourceType, obj: dict[str, Any] | None, subresource: str = "") -> dict[str, Any]:
    """The part of an object ownership is tracked on: no apiVersion/kind/server metadata; with a
    status subresource, the main resource leaves status out and `status` keeps only it."""
    if not obj:
        return {}
    if "status" in rt.subresources:
        if subresource == "status":
            return {"status": obj["status"]} if "status" in obj else {}
        obj = {k: v for k, v in obj.items() if k != "status"}
    out = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _STRIPPED_META}
    if meta:
        out["metadata"] = meta
    else:
        out.pop("metadata", None)
    return out


# -- FieldsV1 ---------------------------------------------------------------------------------
def _element_string(element: Element) -> str:
    return f"{element[0]}:{element[1]}"


def _parse_element(text: str) -> Element:
    prefix, sep, rest = text.partition(":")
    if not sep or prefix not in ("f", "k", "v", "i"):
        raise ValueError(f"invalid field path element {text!r}")
    if prefix in ("k", "v"):
        rest = _compact(json.loads(rest))
    return (prefix, rest)


def encode(fields: FieldSet) -> dict[str, Any]:
    """A field set as FieldsV1 (in SMD's order: ".", then fields, keys, values, indexes)."""
    tree: dict[str, Any] = {}
    for path in fields:
        node = tree
        for kind, text in path:
            node = node.setdefault(f"{kind}:{text}", {})
        node["."] = {}
    return _finish(tree)


_ORDER = {".": 0, "f": 1, "k": 2, "v": 3, "i": 4}


def _order(key: str) -> tuple[int, str]:
    return (_ORDER[key[0]], key)


def _finish(node: dict[str, Any]) -> dict[str, Any]:
    """Sorts a tree built by `encode` (in place) and drops "." where a path has no members."""
    member = node.pop(".", None) is not None
    if not node:
        return node
    # "f:" < "k:" < "v:" as plain strings too; only an index ("i:", never in a walk) needs
    # SMD's explicit order.
    keys = sorted(node, key=_order) if any(k[0] == "i" for k in node) else sorted(node)
    out: dict[str, Any] = {".": {}} if member else {}
    for key in keys:
        out[key] = _finish(node[key])
    return out


def decode(fields: Any, prefix: Path = ()) -> FieldSet:
    """FieldsV1 back to a field set; raises ValueError for a malformed one."""
    if not isinstance(fields, dict):
        raise ValueError("fieldsV1 must be an object")
    found: FieldSet = set()
    for key, sub in fields.items():
        if key == ".":
            if prefix:
                found.add(prefix)
            continue
        child = (*prefix, _parse_element(key))
        if not sub:
            found.add(child)
        else:
            found |= decode(sub, child)
    return found


def path_string(path: Path) -> str:
    """A path as the API server prints it in conflicts: `.spec.containers[name="web"].image`."""
    out = ""
    for kind, text in path:
        if kind == "f":
            out += "." + text
        elif kind == "k":
            pairs = json.loads(text)
            out += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in pairs.items()) + "]"
        elif kind == "v":
            out += f"[={text}]"
        else:
            out += f"[{text}]"
    return out


# -- entries ----------------------------------------------------------------------------------
@dataclass
class Entry:
    """One `managedFields` entry."""

    manager: str
    operation: str  # Apply | Update
    api_version: str
    fields: FieldSet
    time: str = ""
    subresource: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.manager, self.operation, self.subresource)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
        }
        if self.time:
            out["time"] = self.time
        out["fieldsType"] = "FieldsV1"
        out["fieldsV1"] = encode(self.fields)
        if self.subresource:
            out["subresource"] = self.subresource
        return out

    def describe(self) -> str:
        """How a conflict names this manager (SMD's manager identifier, printed)."""
        text = json.dumps(self.manager)
        if self.subresource:
            text += f" with subresource {json.dumps(self.subresource)}"
        if self.operation == "Update":
            text += f" using {self.api_version}"
        return text


def parse_entries(raw: Any) -> list[Entry]:
    """Entries from `metadata.managedFields`; raises ValueError when malformed."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ValueError("metadata.managedFields must be a list")
    entries = []
    for item in raw:
        if not isinstance(item, dict):
            raise ValueError("a managedFields entry must be an object")
        if item.get("fieldsType", "FieldsV1") != "FieldsV1":
            raise ValueError(f"unsupported fieldsType {item.get('fieldsType')!r}")
        if item.get("operation") not in ("Apply", "Update"):
            raise ValueError(f"invalid operation {item.get('operation')!r}")
        entries.append(
            Entry(
                manager=str(item.get("manager", "")),
                operation=item["operation"],
                api_version=str(item.get("apiVersion", "")),
                fields=decode(item.get("fieldsV1") or {}),
                time=_utc(item.get("time")),
                subresource=str(item.get("subresource", "")),
            )
        )
    return entries


def _utc(value: Any) -> str:
    """A timestamp as the server writes it (clients may send `+00:00` for `Z`)."""
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def entries_to_json(entries: list[Entry]) -> list[dict[str, Any]]:
    """Entries sorted as the API server writes them: Apply first, then by time and manager."""
    kept = [e for e in entries if e.fields]
    kept.sort(key=lambda e: (e.operation, e.time, e.manager, e.api_version, e.subresource))
    return [e.to_json() for e in kept]


def _is_reset(raw: Any) -> bool:
    return isinstance(raw, list) and len(raw) == 1 and raw[0] == {}


def base_entries(live: dict[str, Any] | None, new: dict[str, Any]) -> list[Entry]:
    """The entries a write starts from: the live ones, unless the client set its own.

    As on the real server, a client may replace managedFields (kubectl does when it migrates
    client-side apply ownership to server-side apply) or reset them with `[{}]`; an empty or
    malformed list keeps the live entries, so clients unaware of the field cannot drop it.
    """
    live_raw = ((live or {}).get("metadata") or {}).get("managedFields")
    new_raw = (new.get("metadata") or {}).get("managedFields")
    if _is_reset(new_raw):
        return []
    if new_raw and new_raw != live_raw:
        try:
            return parse_entries(new_raw)
        except (ValueError, TypeError, KeyError):
            pass
    try:
        return parse_entries(live_raw)
    except (ValueError, TypeError, KeyError):
        return []


def find_entry(entries: list[Entry], key: tuple[str, str, str], api_version: str) -> Entry:
    """The entry with that (manager, operation, subresource) key, added when missing."""
    for entry in entries:
        if entry.key == key:
            return entry
    entry = Entry(key[0], key[1], api_version, set(), subresource=key[2])
    entries.append(entry)
    return entry


def record_update(
    rt: ResourceType,
    live: dict[str, Any] | None,
    new: dict[str, Any],
    manager: str,
    subresource: str,
    now: str,
) -> None:
    """Sets `new`'s managedFields after an Update (create, update or patch) by `manager`.

    The manager gets what it added or changed; other managers lose those fields (an Update
    never conflicts, it takes over) and everyone loses what was removed.
    """
    entries = base_entries(live, new)
    schema = schema_for(rt)
    old_view, new_view = view(rt, live, subresource), view(rt, new, subresource)
    if old_view != new_view:  # walking is the costly part: skip it for a no-op write
        diff = compare(walk(old_view, schema), walk(new_view, schema))
        key = (manager, "Update", subresource)
        for entry in entries:
            if entry.key != key:
                entry.fields -= diff.changed() | diff.removed
        mine = find_entry(entries, key, rt.api_version)
        mine.fields = (mine.fields - diff.removed) | diff.changed()
        mine.api_version, mine.time = rt.api_version, now
    set_entries(new, entries)


def set_entries(obj: dict[str, Any], entries: list[Entry]) -> None:
    meta = obj.setdefault("metadata", {})
    encoded = entries_to_json(entries)
    if encoded:
        meta["managedFields"] = encoded
    else:
        meta.pop("managedFields", None)


def default_manager(user_agent: str) -> str:
    """The manager of a write that names none: the User-Agent's product, as the server does
    (the sandbox's own writes, e.g. loading a fixture, have no User-Agent)."""
    return user_agent.split("/", 1)[0][:128] or "clustercord-sandbox"
