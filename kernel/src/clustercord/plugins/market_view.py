"""What ``/plugin browse`` shows: the catalog filtered, marked and paged (no fetching here)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from packaging.version import Version

from clustercord.plugins.index import IndexVersion
from clustercord.plugins.sources import Catalog, Listing
from clustercord_sdk import API_VERSION
from clustercord_sdk.paging import Pager
from clustercord_sdk.services import MarketEntry, MarketPage


def entry(listing: Listing, version: IndexVersion, installed: Mapping[str, Any]) -> MarketEntry:
    plugin = listing.plugin
    here = installed.get(plugin.name)
    newest = plugin.latest(API_VERSION)
    return MarketEntry(
        name=plugin.name,
        version=version.version,
        description=version.description,
        category=plugin.category,
        source=listing.source.name,
        api=version.api,
        permissions=list(version.permissions),
        capabilities=list(version.capabilities),
        commands=["/" + c for c in version.commands],
        icon=version.icon,
        author=version.author,
        homepage=version.homepage,
        stars=plugin.stars,
        installs=plugin.installs,
        verified_by=plugin.verified_by,
        installed=here.version if here is not None else None,
        updatable=bool(
            here is not None
            and newest is not None
            and Version(newest.version) > Version(here.version)
        ),
    )


def browse(
    catalog: Catalog,
    installed: Mapping[str, Any],
    *,
    category: str | None = None,
    query: str | None = None,
    page: int = 1,
    per_page: int = 10,
) -> MarketPage:
    """Plugins matching ``category`` and ``query`` (name or description, any case), most
    starred first, then by name; one page of them."""
    needle = (query or "").strip().lower()
    wanted = (category or "").strip().lower()
    matches = []
    for listing in catalog.listings.values():
        plugin = listing.plugin
        version = plugin.latest(API_VERSION) or plugin.versions[0]
        if wanted and plugin.category != wanted:
            continue
        if needle and needle not in plugin.name and needle not in version.description.lower():
            continue
        matches.append((listing, version))
    matches.sort(key=lambda lv: (-(lv[0].plugin.stars or 0), lv[0].plugin.name))
    per_page = max(1, min(per_page, 25))
    pager = Pager.over(len(matches), per_page, page)
    return MarketPage(
        entries=[entry(lst, version, installed) for lst, version in matches[pager.slice(per_page)]],
        page=pager.page,
        pages=pager.pages,
        total=len(matches),
        problems=list(catalog.problems),
    )
