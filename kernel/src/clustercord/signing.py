"""Plugin signatures with GnuPG: signing keys, the trust store, signing and verifying.

A plugin folder carries ``SIGNATURE.asc``: a clearsigned JSON document naming the
plugin, its version, API range, permissions and capabilities, and the sha256 of
every file of the folder. Verification trusts nothing but pinned fingerprints:
gpg's ``valid`` is true for any key that happens to be in the keyring, so the
signer's primary fingerprint must also be in ``trusted.json``.

The trust store (public keys + pins) and the signing keys (private) live in
separate GnuPG homes under the data directory, never in the user's own keyring.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gnupg

from clustercord.storage import write_atomic

SIGNATURE_FILE = "SIGNATURE.asc"
SIGNATURE_FORMAT = "clustercord-plugin-signature/1"
# Never part of a signature: the signature itself and bytecode caches, which the kernel
# never loads (plugins/loader.py compiles the signed source). Any other file counts, a
# sourceless ``.pyc`` beside the code included, so it must be signed or the plugin is refused.
_IGNORED_DIRS = {"__pycache__"}


class SigningError(Exception):
    """Signing or key management failed; the message says why."""


def _gpg(home: Path, *, agent: bool = True) -> gnupg.GPG:
    """GnuPG on a dedicated home. Without ``agent`` (public keys only: import, verify), gpg
    starts no gpg-agent: otherwise every data directory that ever verified a plugin would
    leave a daemon running after the process that needed it has gone."""
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(home, 0o700)
    return gnupg.GPG(gnupghome=str(home), options=None if agent else ["--no-autostart"])


def plugin_files(folder: Path) -> dict[str, str]:
    """sha256 of every file of a plugin folder, by POSIX path relative to it."""
    hashes = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if (
            path.is_dir()
            or (relative.name == SIGNATURE_FILE and len(relative.parts) == 1)
            or _IGNORED_DIRS.intersection(relative.parts)
        ):
            continue
        hashes[relative.as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


@dataclass
class TrustedKey:
    fingerprint: str
    label: str
    kind: str
    """``dev`` (this installation's development key), ``release`` or ``third-party``."""
    added_at: float = 0.0


class TrustStore:
    """Public keys this installation trusts, pinned by fingerprint."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pins_file = path / "trusted.json"
        self._gpg: gnupg.GPG | None = None

    @property
    def gpg(self) -> gnupg.GPG:
        if self._gpg is None:
            self._gpg = _gpg(self.path / "keyring", agent=False)
        return self._gpg

    def keys(self) -> dict[str, TrustedKey]:
        if not self.pins_file.exists():
            return {}
        data = json.loads(self.pins_file.read_text("utf-8"))
        return {fpr: TrustedKey(fingerprint=fpr, **info) for fpr, info in data.items()}

    def _save(self, keys: dict[str, TrustedKey]) -> None:
        data = {
            k.fingerprint: {"label": k.label, "kind": k.kind, "added_at": k.added_at}
            for k in keys.values()
        }
        write_atomic(self.pins_file, json.dumps(data, indent=2, sort_keys=True), mode=0o644)

    def trust(self, armored_public_key: str, *, label: str, kind: str = "third-party") -> str:
        """Import one public key and pin its fingerprint; returns the fingerprint."""
        if "PRIVATE KEY" in armored_public_key:
            raise SigningError("refusing a private key: trust takes a public key only")
        result = self.gpg.import_keys(armored_public_key)
        fingerprints = sorted(set(result.fingerprints))
        if len(fingerprints) != 1:
            raise SigningError(
                f"expected exactly one public key, found {len(fingerprints)}"
                + (f" ({result.results})" if not fingerprints else "")
            )
        keys = self.keys()
        keys[fingerprints[0]] = TrustedKey(fingerprints[0], label, kind, time.time())
        self._save(keys)
        return fingerprints[0]

    def untrust(self, fingerprint: str) -> bool:
        keys = self.keys()
        match = [fpr for fpr in keys if fpr.endswith(fingerprint.upper().replace(" ", ""))]
        if len(match) != 1:
            return False
        del keys[match[0]]
        self._save(keys)
        return True

    def open_signed(self, text: str) -> tuple[bytes, TrustedKey]:
        """Verify a clearsigned text; return the signed bytes and the pinned signer.

        Raises :class:`VerificationFailure` with the precise reason.
        """
        result = self.gpg.decrypt(text)
        key_id = result.key_id or result.fingerprint or "unknown"
        if not result.valid:
            if result.status == "no public key":
                # Say what to do: most often a fresh data directory that trusts no key yet.
                raise VerificationFailure(
                    "untrusted-key",
                    f"signed by an untrusted key ({key_id}): `clustercord keys trust FILE` pins "
                    "a publisher's key; in a development checkout, `clustercord keys dev-setup`",
                )
            if result.status == "signature bad":
                raise VerificationFailure(
                    "bad-signature", "bad signature: SIGNATURE.asc was altered after signing"
                )
            status = result.status or "not an OpenPGP signed message"
            raise VerificationFailure("bad-signature", f"signature not valid ({status})")
        if result.key_status is not None:
            raise VerificationFailure("untrusted-key", f"signing key {key_id}: {result.key_status}")
        fingerprint = result.pubkey_fingerprint or result.fingerprint
        pinned = self.keys().get(fingerprint)
        if pinned is None:
            raise VerificationFailure(
                "untrusted-key", f"signed by key {fingerprint}, which is not pinned as trusted"
            )
        return bytes(result.data), pinned

    def verify_detached(self, data: bytes, signature: bytes, what: str) -> TrustedKey:
        """Check a detached signature (a signed index, ``what`` names it in errors); return
        the pinned signer. Raises :class:`VerificationFailure` like :meth:`open_signed`."""
        with tempfile.NamedTemporaryFile(prefix="ccsig", suffix=".asc") as handle:
            handle.write(signature)
            handle.flush()
            result = self.gpg.verify_data(handle.name, data)
        key_id = result.key_id or result.fingerprint or "unknown"
        if not result.valid:
            if result.status == "no public key":
                raise VerificationFailure(
                    "untrusted-key",
                    f"{what} is signed by an untrusted key ({key_id}): `clustercord keys trust "
                    "FILE` pins a publisher's key",
                )
            if result.status == "signature bad":
                raise VerificationFailure(
                    "bad-signature", f"bad signature: {what} was altered after signing"
                )
            status = result.status or "not an OpenPGP signature"
            raise VerificationFailure("bad-signature", f"{what}: signature not valid ({status})")
        if result.key_status is not None:
            raise VerificationFailure("untrusted-key", f"signing key {key_id}: {result.key_status}")
        fingerprint = result.pubkey_fingerprint or result.fingerprint
        pinned = self.keys().get(fingerprint)
        if pinned is None:
            raise VerificationFailure(
                "untrusted-key", f"{what} is signed by key {fingerprint}, which is not pinned"
            )
        return pinned


class VerificationFailure(Exception):
    """A plugin failed verification. ``code`` is stable for scripts; the message is for people."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


@dataclass
class Verified:
    """A plugin folder that passed verification."""

    signer: TrustedKey
    signed: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return "dev-signed" if self.signer.kind == "dev" else "verified"


def verify_plugin_folder(folder: Path, trust: TrustStore) -> Verified:
    """Check ``folder`` against its signature. Raises :class:`VerificationFailure`."""
    signature = folder / SIGNATURE_FILE
    if not signature.is_file():
        raise VerificationFailure("missing-signature", f"missing signature ({SIGNATURE_FILE})")
    data, signer = trust.open_signed(signature.read_text("utf-8", errors="replace"))
    try:
        signed = json.loads(data)
        assert signed.get("format") == SIGNATURE_FORMAT
        expected: dict[str, str] = signed["files"]
    except (ValueError, AssertionError, KeyError, TypeError):
        raise VerificationFailure(
            "bad-signature", "the signed document is not a plugin signature"
        ) from None
    actual = plugin_files(folder)
    changed = sorted(p for p in expected if p in actual and actual[p] != expected[p])
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    if changed:
        raise VerificationFailure(
            "file-changed", f"file changed after signing: {', '.join(changed)}"
        )
    if missing:
        raise VerificationFailure("file-missing", f"signed file missing: {', '.join(missing)}")
    if extra:
        raise VerificationFailure(
            "file-unsigned", f"file not covered by the signature: {', '.join(extra)}"
        )
    return Verified(signer=signer, signed=signed)


class SigningKeys:
    """The private keys this installation signs with (the development key)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def gpg(self) -> gnupg.GPG:
        return _gpg(self.path)

    def create(self, name: str, email: str | None = None, *, comment: str | None = None) -> str:
        """A new Ed25519 signing key without passphrase (it never leaves this machine)."""
        gpg = self.gpg
        params = gpg.gen_key_input(
            key_type="EDDSA",
            key_curve="ed25519",
            key_usage="sign",
            name_real=name,
            name_email=email or f"clustercord@{socket.gethostname() or 'localhost'}",
            name_comment=comment or "",
            no_protection=True,
            expire_date="0",
        )
        key = gpg.gen_key(params)
        if not key.fingerprint:
            raise SigningError(f"gpg could not create a key: {key.stderr.strip()[-300:]}")
        return str(key.fingerprint)

    def secret_keys(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return list(self.gpg.list_keys(secret=True))

    def export_public(self, fingerprint: str) -> str:
        text = self.gpg.export_keys(fingerprint)
        if not text:
            raise SigningError(f"no signing key {fingerprint}")
        return str(text)

    def signer(self, fingerprint: str) -> Signer:
        return Signer(self.gpg, fingerprint)


class Signer:
    """Signs text with one key of one GnuPG home."""

    def __init__(self, gpg: gnupg.GPG, fingerprint: str, passphrase: str | None = None) -> None:
        self.gpg = gpg
        self.fingerprint = fingerprint
        self.passphrase = passphrase

    def clearsign(self, text: str) -> str:
        signed = self.gpg.sign(
            text, keyid=self.fingerprint, clearsign=True, passphrase=self.passphrase
        )
        if not signed.data:
            raise SigningError(f"gpg could not sign: {signed.status or signed.stderr[-300:]}")
        return str(signed)

    def detach_sign(self, data: bytes) -> str:
        """An armored detached signature of ``data`` (a marketplace index)."""
        signed = self.gpg.sign(
            data, keyid=self.fingerprint, detach=True, passphrase=self.passphrase
        )
        if not signed.data:
            raise SigningError(f"gpg could not sign: {signed.status or signed.stderr[-300:]}")
        return str(signed)


@contextlib.contextmanager
def release_signer(armored_private_key: str, passphrase: str | None = None) -> Iterator[Signer]:
    """A signer for a release key given in the environment, in a throwaway GnuPG home."""
    with tempfile.TemporaryDirectory(prefix="ccsign") as home:
        gpg = _gpg(Path(home))
        result = gpg.import_keys(armored_private_key, passphrase=passphrase)
        secret = [k for k in gpg.list_keys(secret=True)]
        if not secret:
            raise SigningError(f"the release key could not be imported: {result.results}")
        yield Signer(gpg, secret[0]["fingerprint"], passphrase)


def sign_plugin_folder(folder: Path, manifest: dict[str, Any], signer: Signer) -> Path:
    """Write ``SIGNATURE.asc`` for ``folder`` (its manifest already validated)."""
    document = {
        "format": SIGNATURE_FORMAT,
        "plugin": manifest["name"],
        "version": manifest["version"],
        "api": manifest["api"],
        "permissions": manifest.get("permissions", []),
        "capabilities": manifest.get("capabilities", []),
        "files": plugin_files(folder),
        "signed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "signer": signer.fingerprint,
    }
    text = signer.clearsign(json.dumps(document, indent=2, sort_keys=True) + "\n")
    target = folder / SIGNATURE_FILE
    write_atomic(target, text, mode=0o644)
    return target
