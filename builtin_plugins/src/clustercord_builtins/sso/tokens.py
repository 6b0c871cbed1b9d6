"""How the SSO plugin keeps secrets it hands out: as SHA-256 hashes, never in clear."""

from __future__ import annotations

import hashlib


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
