"""Kubernetes label selectors: one grammar for manifest event filters and the sandbox.

``app=web``, ``app==web``, ``app!=web``, ``env in (a,b)``, ``env notin (a)``, ``gpu``
(exists), ``!legacy`` (does not exist), joined by commas (AND), as in
``k8s.io/apimachinery/pkg/labels``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import NamedTuple

# A label key: an optional DNS-subdomain prefix and "/", then a name.
_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_SET = re.compile(r"^(\S*)\s+(in|notin)\s*(.*)$", re.S)


class Requirement(NamedTuple):
    """``(key, operator, values)``; operator: ``=``, ``!=``, ``in``, ``notin``, ``exists``,
    ``!exists``. A tuple, so requirements compare equal to plain tuples."""

    key: str
    op: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op in ("=", "in"):
            return present and labels[self.key] in self.values
        # "!=" and "notin" match objects without the label, as the API server does.
        return not present or labels[self.key] not in self.values


def split_top_level(text: str) -> list[str]:
    """Split on commas outside parentheses, dropping empty parts."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += (char == "(") - (char == ")")
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [part.strip() for part in parts if part.strip()]


def parse_label_selector(text: str) -> list[Requirement]:
    """Parse a selector; a malformed one raises ``ValueError`` naming the bad part."""
    requirements = []
    for part in split_top_level(text.replace("\t", " ")):
        requirement = _requirement(part)
        if not requirement.key:
            raise ValueError(f"label selector {text!r} has an empty key")
        if not _KEY.match(requirement.key):
            raise ValueError(f"label selector {part!r}: {requirement.key!r} is not a label key")
        bad = [v for v in requirement.values if not _VALUE.match(v) or len(v) > 63]
        if bad:
            raise ValueError(f"label selector {part!r}: {bad[0]!r} is not a label value")
        requirements.append(requirement)
    return requirements


def _requirement(part: str) -> Requirement:
    if match := _SET.match(part):
        key, op, rest = match.group(1), match.group(2), match.group(3).strip()
        if not (rest.startswith("(") and rest.endswith(")")):
            raise ValueError(f"label selector {part!r}: values must be in parentheses")
        values = tuple(v.strip() for v in rest[1:-1].split(",") if v.strip())
        if not values:
            raise ValueError(f"label selector {part!r}: needs at least one value")
        return Requirement(key, op, values)
    for op, normal in (("!=", "!="), ("==", "="), ("=", "=")):
        if op in part:
            key, _, value = part.partition(op)
            return Requirement(key.strip(), normal, (value.strip(),))
    if part.startswith("!"):
        return Requirement(part[1:].strip(), "!exists")
    return Requirement(part, "exists")


def labels_match(requirements: list[Requirement], labels: Mapping[str, str]) -> bool:
    """True when ``labels`` satisfy every requirement."""
    return all(requirement.matches(labels) for requirement in requirements)
