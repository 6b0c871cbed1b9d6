"""``clustercord-sso``: the exec credential helper of an SSO kubeconfig (kubectl runs it).

First run: an Ed25519 key made here (``$XDG_CONFIG_HOME/clustercord-sso/``, 0600) is enrolled
for the session with the kubeconfig's one-time secret; then every run signs
``session|device|time`` and trades it for a token of at most 10 minutes, printed as a
``client.authentication.k8s.io/v1`` ExecCredential. Only the standard library and
``cryptography``; never prints the key.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import json
import os
import socket
import ssl
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


def _state_file(server: str) -> Path:
    """One key per machine and server (so a device an admin approved once stays approved
    for the user's next sessions), and the device id of each session enrolled with it."""
    root = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "clustercord-sso"
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    name = hashlib.sha256(server.encode()).hexdigest()[:24]
    return root / f"{name}.json"


def _save(path: Path, state: dict[str, Any]) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(state, handle)


def _post(server: str, path: str, body: dict[str, Any], context: ssl.SSLContext | None) -> Any:
    request = urllib.request.Request(
        f"{server}/device/{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, context=context, timeout=20) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            message = json.loads(error.read()).get("error", error.reason)
        except ValueError:
            message = error.reason
        raise SystemExit(f"clustercord-sso: {message}") from None
    except urllib.error.URLError as error:
        raise SystemExit(f"clustercord-sso: cannot reach {server}: {error.reason}") from None


def main(argv: list[str] | None = None) -> int:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    parser = argparse.ArgumentParser(prog="clustercord-sso", description=__doc__.split("\n")[0])
    parser.add_argument("--server", required=True, help="the sso plugin's URL")
    parser.add_argument("--session", required=True)
    parser.add_argument("--enroll", required=True, help="the one-time enrollment secret")
    parser.add_argument("--ca-data", help="the server's certificate (base64 PEM) to trust")
    args = parser.parse_args(argv)
    context = None
    if args.ca_data:
        context = ssl.create_default_context(cadata=base64.b64decode(args.ca_data).decode())
    state_path = _state_file(args.server)
    state: dict[str, Any] = {"devices": {}}
    if state_path.exists():
        state = json.loads(state_path.read_text())
    if "key" not in state:
        made = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        state = {"key": base64.b64encode(made).decode(), "devices": {}}
        _save(state_path, state)
    key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(state["key"]))
    device = state["devices"].get(args.session)
    if device is None:
        public = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        enrolled = _post(
            args.server,
            "enroll",
            {
                "session": args.session,
                "enroll": args.enroll,
                "public_key": base64.b64encode(public).decode(),
                "name": socket.gethostname(),
            },
            context,
        )
        device = state["devices"][args.session] = enrolled["device"]
        _save(state_path, state)
    now = time.time()
    signature = key.sign(f"{args.session}|{device}|{now}".encode())
    issued = _post(
        args.server,
        "token",
        {
            "session": args.session,
            "device": device,
            "ts": now,
            "signature": base64.b64encode(signature).decode(),
        },
        context,
    )
    expires = datetime.datetime.fromtimestamp(issued["expires"], datetime.UTC)
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": {
            "token": issued["token"],
            "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    }
    json.dump(credential, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
