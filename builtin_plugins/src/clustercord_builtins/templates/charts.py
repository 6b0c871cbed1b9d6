"""Helm charts of a template: what a ``helm_charts`` entry may say, and how helm is run.

A chart entry's ``chart``, ``repo`` and ``version`` end up on helm's command line, so each is
checked before anything runs (when a template is loaded, and again just before helm starts):

- ``chart`` is a chart reference: ``name``, ``repo/name`` or ``oci://host[:port]/path``, lower
  case letters, digits, ``.``, ``_`` and ``-``; never an option (``--post-renderer=...``) nor a
  path on the bot's disk;
- ``repo`` is an ``https://`` URL whose host is a DNS name or a public IP address: not
  loopback, link-local (169.254.0.0/16, fe80::/10), unspecified, multicast, nor a cloud
  metadata endpoint (169.254.169.254, ``metadata.google.internal``, ...), and without
  credentials in it;
- ``version`` is a version or a version constraint.

Helm's argument list puts every value behind ``--name=value`` and the positional arguments
behind ``--``, so even a value that slipped through could not become an option. Helm runs
with a scrubbed environment (its own empty home: no repository credentials, no registry
login, no kubeconfig of the bot's), a deadline, and its output is refused past a size.
This module imports nothing of the plugin: :mod:`.template` checks entries with it.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

_SEGMENT = r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?"
_CHART = re.compile(rf"^(?:{_SEGMENT}/)?{_SEGMENT}$")
_OCI = re.compile(
    rf"^oci://(?P<host>[A-Za-z0-9.-]{{1,253}}|\[[0-9A-Fa-f:.]+\])(?::[0-9]{{1,5}})?"
    rf"(?:/{_SEGMENT}){{1,8}}$"
)
_VERSION = re.compile(r"^[0-9A-Za-z~^*xX=<>!.,+ |-]{1,64}$")
_DNS_NAME = re.compile(
    r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$"
)
# Names that reach a machine's own metadata service or itself, whatever DNS says elsewhere.
_FORBIDDEN_NAMES = (
    "localhost",
    "metadata",
    "metadata.google.internal",
    "metadata.goog",
    "metadata.azure.internal",
    "instance-data",
    "instance-data.ec2.internal",
    "metadata.tencentyun.com",
    "metadata.platformequinix.com",
)
_FORBIDDEN_SUFFIXES = (".localhost", ".internal", ".local", ".localdomain")
# Metadata endpoints that are not link-local addresses (AWS IPv6, Alibaba, Oracle...).
_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)
MAX_OUTPUT = 16 * 2**20
TIMEOUT = 120.0


class ChartError(ValueError):
    """A chart entry that may not be used; the message names the field."""


def _forbidden_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    if address in _METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_multicast or address.is_reserved:
        return "a reserved address"
    return None


def check_host(host: str, field: str) -> None:
    """Refuse a host that reaches the bot's machine, its link or a metadata service."""
    host = host.lower().rstrip(".")
    literal = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        address = ipaddress.ip_address(literal)
    except ValueError:
        address = None
    if address is not None:
        why = _forbidden_address(address)
        if why:
            raise ChartError(f"{field}: {host} is {why}; a chart repository must be public")
        return
    if host in _FORBIDDEN_NAMES or host.endswith(_FORBIDDEN_SUFFIXES):
        raise ChartError(
            f"{field}: {host} names this machine or a metadata service; "
            "a chart repository must be public"
        )
    if not _DNS_NAME.match(host):
        # Also refuses the numeric spellings some resolvers take (2130706433, 0x7f.1).
        raise ChartError(f"{field}: {host!r} is not a DNS name or an IP address")


def check_repo(repo: Any, field: str = "repo") -> str:
    if not isinstance(repo, str) or not repo:
        raise ChartError(f"{field}: an https:// URL is required")
    if any(c.isspace() or ord(c) < 32 for c in repo) or repo.startswith("-"):
        raise ChartError(f"{field}: {repo[:100]!r} is not an https:// URL")
    try:
        parts = urlsplit(repo)
        port = parts.port
    except ValueError:
        raise ChartError(f"{field}: {repo[:100]!r} is not a valid URL") from None
    if parts.scheme != "https":
        raise ChartError(
            f"{field}: {repo[:100]!r} must be an https:// URL (not {parts.scheme or 'a path'})"
        )
    if parts.username is not None or parts.password is not None:
        raise ChartError(f"{field}: credentials in the URL are not accepted")
    if not parts.hostname:
        raise ChartError(f"{field}: {repo[:100]!r} has no host")
    if port == 0:
        raise ChartError(f"{field}: port 0 is not a port")
    check_host(parts.hostname, field)
    return repo


def check_chart_name(chart: Any, field: str = "chart") -> str:
    if not isinstance(chart, str) or not chart:
        raise ChartError(f"{field}: a chart reference is required")
    if chart.startswith("-"):
        raise ChartError(
            f"{field}: {chart[:100]!r} starts with '-': a chart is a name, never an option"
        )
    oci = _OCI.match(chart)
    if oci is not None:
        check_host(oci.group("host"), field)
        return chart
    if not _CHART.match(chart):
        raise ChartError(
            f"{field}: {chart[:100]!r} is not a chart reference (name, repo/name or "
            "oci://host/path; lower case letters, digits, '.', '_' and '-')"
        )
    return chart


def check_version(version: Any, field: str = "version") -> str:
    if not isinstance(version, str) or not _VERSION.match(version) or version.startswith("-"):
        raise ChartError(f"{field}: {str(version)[:100]!r} is not a chart version or constraint")
    return version


def check_entry(chart: Mapping[str, Any], where: str = "") -> None:
    """Raise :class:`ChartError` naming the first bad field of a ``helm_charts`` entry."""
    check_chart_name(chart.get("chart"), f"{where}chart")
    check_repo(chart.get("repo"), f"{where}repo")
    check_version(chart.get("version"), f"{where}version")


def helm_binary() -> str | None:
    return shutil.which("helm")


def helm_argv(
    helm: str, chart: Mapping[str, Any], *, release: str, namespace: str, values: str | None
) -> list[str]:
    """``helm template`` of one checked chart: every value as ``--name=value``, the
    positional arguments (release, chart) after ``--``."""
    check_entry(chart)
    argv = [helm, "template", f"--namespace={namespace}", f"--version={chart['version']}"]
    if not str(chart["chart"]).startswith("oci://"):
        argv.append(f"--repo={chart['repo']}")
    if values is not None:
        argv.append(f"--values={values}")
    return [*argv, "--", release, chart["chart"]]


def run_helm(
    helm: str,
    chart: Mapping[str, Any],
    values_text: str | None,
    *,
    release: str,
    namespace: str,
    timeout: float = TIMEOUT,
) -> tuple[int, str, str]:
    """Run ``helm template`` (checked argv, scrubbed environment, deadline, bounded output);
    ``(returncode, stdout, stderr)``. Raises :class:`ChartError` when the output is too large."""
    with tempfile.TemporaryDirectory(prefix="cc-helm-") as scratch:
        home = Path(scratch)
        values = None
        if values_text is not None:
            values = str(home / "values.yaml")
            Path(values).write_text(values_text)
        environment = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": scratch,
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
            "KUBECONFIG": str(home / "no-kubeconfig"),
        }
        argv = helm_argv(helm, chart, release=release, namespace=namespace, values=values)
        out_path, err_path = home / "stdout", home / "stderr"
        with out_path.open("wb") as out, err_path.open("wb") as err:
            done = subprocess.run(
                argv,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=environment,
                cwd=scratch,
                timeout=timeout,
                check=False,
            )
        if out_path.stat().st_size > MAX_OUTPUT:
            raise ChartError(
                f"chart {chart['chart']}: helm's output passes {MAX_OUTPUT // 2**20} MB; refused"
            )
        stdout = out_path.read_text(errors="replace")
        with err_path.open("rb") as err_file:
            stderr = err_file.read(4000).decode(errors="replace")
    return done.returncode, stdout, stderr
