"""The HTTP service's certificate: the configured files, or a self-signed one of our own.

The self-signed certificate and its key live in ``<data dir>/http/`` (key 0600, written
before any byte of it) and are made again when missing, about to expire (7 days) or not
naming every host the service is reached by (``localhost``, ``127.0.0.1``, the listen host,
the public URL's host). Clients pin it: a plugin hands it out as the CA of the links it
gives (the SSO plugin's kubeconfig carries it as ``certificate-authority-data``).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from clustercord_sdk.errors import UsageError

RENEW_BEFORE = datetime.timedelta(days=7)
LIFETIME = datetime.timedelta(days=365)


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path
    pem: str
    """The certificate (PEM), for clients to trust."""
    self_signed: bool

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"http: cannot load {self.cert} and {self.key}: {exc}") from None
        return context


def configured(cert: Path, key: Path) -> Certificate:
    try:
        pem = cert.read_text("ascii")
    except OSError as exc:
        raise UsageError(f"http.cert {cert}: {exc.strerror}") from None
    return Certificate(cert, key, pem, self_signed=False)


def self_signed(directory: Path, hosts: list[str]) -> Certificate:
    """The self-signed certificate in ``directory`` for ``hosts``, made if needed."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    names = sorted({"localhost", "127.0.0.1", *[h for h in hosts if h and h != "0.0.0.0"]})
    now = datetime.datetime.now(datetime.UTC)
    if cert_path.exists() and key_path.exists():
        try:
            existing = x509.load_pem_x509_certificate(cert_path.read_bytes())
            san = existing.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            have = {str(v) for v in san.get_values_for_type(x509.DNSName)} | {
                str(v) for v in san.get_values_for_type(x509.IPAddress)
            }
            if existing.not_valid_after_utc - RENEW_BEFORE > now and set(names) <= have:
                os.chmod(key_path, 0o600)
                return Certificate(cert_path, key_path, cert_path.read_text("ascii"), True)
        except (ValueError, x509.ExtensionNotFound):
            pass  # unreadable or foreign: made again below
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ClusterCord HTTP service")])
    alternative: list[x509.GeneralName] = []
    for name in names:
        try:
            alternative.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alternative.append(x509.DNSName(name))
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + LIFETIME)
        .add_extension(x509.SubjectAlternativeName(alternative), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(key_bytes)
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
    cert_path.write_text(pem, "ascii")
    return Certificate(cert_path, key_path, pem, self_signed=True)
