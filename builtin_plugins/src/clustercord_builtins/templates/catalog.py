"""Where templates come from: the curated catalog beside this module, and community
templates accepted by ``/template submit`` (kept in the plugin's store with their status)."""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clustercord_builtins.templates.template import (
    Template,
    TemplateError,
    load_template,
    load_template_file,
)
from clustercord_sdk.errors import CommandError

CATALOG = Path(__file__).with_name("catalog")
COMMUNITY_TABLE = "community"
DEPLOYABLE = ("validated", "verified")


@dataclass(frozen=True)
class Entry:
    """A template with where it came from: ``curated`` or ``community`` and its status."""

    template: Template
    source: str
    status: str
    votes: int = 0

    @property
    def badge(self) -> str:
        if self.source == "curated" or self.status == "verified":
            return "✅ verified"
        return f"🧪 community ({self.status})"

    @property
    def popularity(self) -> int:
        # A submitted file's own "popularity" and "verified" are claims: only votes and an
        # admin's verification count for community templates.
        if self.source == "community":
            return self.votes
        return int(self.template.raw.get("popularity", 0))


@functools.cache
def curated() -> dict[str, Template]:
    """Every curated template by name (read once per process)."""
    found = {}
    for path in sorted(CATALOG.glob("*/template.json")):
        template = load_template_file(path)
        found[template.name] = template
    return found


def community_rows(store: Any) -> list[dict[str, Any]]:
    table = store.table(COMMUNITY_TABLE)
    return list(table.rows_where(order_by="name")) if table.exists() else []


def community_entry(row: dict[str, Any]) -> Entry:
    template = load_template(json.loads(row["template"]), source=f"community/{row['name']}")
    return Entry(template, "community", row["status"], int(row.get("votes") or 0))


def entries(store: Any) -> list[Entry]:
    """Every template; a stored community template that no longer passes the checks (one
    accepted before a check existed: an unsafe chart, say) is left out, never served."""
    out = [Entry(t, "curated", "verified") for t in curated().values()]
    for row in community_rows(store):
        try:
            out.append(community_entry(row))
        except (TemplateError, ValueError, KeyError):
            continue
    return out


def find(store: Any, name: str) -> Entry:
    """The template called ``name``, or an error naming close matches."""
    name = (name or "").strip()
    for entry in entries(store):
        if entry.template.name == name:
            return entry
    import difflib

    names = [e.template.name for e in entries(store)]
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else " (try /template search)"
    raise CommandError(f"no template named {name!r}{hint}")


def deployable(entry: Entry) -> None:
    if entry.source == "community" and entry.status not in DEPLOYABLE:
        raise CommandError(
            f"community template {entry.template.name} is {entry.status}: only validated or "
            "verified templates can be deployed"
        )


def search(store: Any, category: str | None, query: str | None) -> list[Entry]:
    words = (query or "").lower().split()
    found = []
    for entry in entries(store):
        template = entry.template
        if category and template.category != category.upper():
            continue
        haystack = " ".join(
            [
                template.name,
                template.title,
                template.description,
                " ".join(template.raw.get("tags", [])),
                " ".join(template.raw.get("components", [])),
            ]
        ).lower()
        if all(word in haystack for word in words):
            found.append(entry)
    return sorted(found, key=lambda e: (-e.popularity, e.template.name))


def save_community(store: Any, row: dict[str, Any]) -> None:
    row = {**row, "updated_at": time.time()}
    store.table(COMMUNITY_TABLE).upsert(row, pk="name", alter=True)
