"""Request attributes: what is being asked, independent of who asks.

Mirrors ``authorizer.AttributesRecord`` minus the user, so the same object can be checked
for many users (``authorize``) or turned into the list of users allowed (``who-can``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Attributes:
    """A resource request (``verb`` on ``api_group``/``resource``[/``subresource``]) or a
    non-resource request (``verb`` on ``path``, with ``is_resource_request=False``).

    ``api_group`` is ``""`` for the core group. ``name`` is set only when the request names
    one object (get, update, delete…); ``list`` and ``create`` carry no name, which is why a
    rule restricted by ``resourceNames`` never grants them.
    """

    verb: str
    resource: str = ""
    api_group: str = ""
    subresource: str = ""
    name: str = ""
    namespace: str = ""
    path: str = ""
    is_resource_request: bool = True

    @classmethod
    def non_resource(cls, verb: str, path: str) -> Attributes:
        """A request for a URL such as ``/healthz`` or ``/apis``."""
        return cls(verb=verb, path=path, is_resource_request=False)

    @property
    def combined_resource(self) -> str:
        """``resource/subresource`` as rules spell it (``pods/log``), or just ``resource``."""
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource

    def __str__(self) -> str:
        if not self.is_resource_request:
            return f"{self.verb} {self.path}"
        group = f".{self.api_group}" if self.api_group else ""
        target = f"{self.combined_resource}{group}"
        if self.name:
            target += f" {self.name!r}"
        where = f" in namespace {self.namespace!r}" if self.namespace else " (cluster-wide)"
        return f"{self.verb} {target}{where}"
