"""The cluster's TLS certificates, written by `bft-node init --tls` (``cryptography``).

One cluster CA (``keys/ca.crt``, its key ``keys/ca.key``) signs one certificate per
replica and per client principal. A replica's certificate names it as ``replica-I``
(a DNS subject alternative name, whatever host it runs on) plus its configured host, a
client's as ``client-NAME``: a dialer checks the replica it meant to reach by that name,
and a listener checks that the certificate names the member the Ed25519 handshake
authenticated (``transport/tls.py``). Keys are ECDSA P-256, written mode 0600 beside the
Ed25519 keys; certificates are valid from an hour ago for ``VALID_DAYS``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CA_CERT", "VALID_DAYS", "client_name", "replica_name", "write_cluster_certs"]

VALID_DAYS = 5 * 365
CA_CERT = "ca.crt"
CA_KEY = "ca.key"


def replica_name(replica_id: int | str) -> str:
    """The name a replica's certificate carries (and a dialer checks)."""
    return f"replica-{replica_id}"


def client_name(principal: str) -> str:
    return f"client-{principal}"


def cert_paths(keys_dir: Path, name: str) -> tuple[Path, Path]:
    """(certificate, private key) of member `name` in `keys_dir`."""
    return keys_dir / f"{name}.crt", keys_dir / f"{name}.tls.key"


def _write_private(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _san(names: list[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _builder(subject: str, issuer: str, public_key, not_before: dt.datetime, days: int):
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + dt.timedelta(days=days))
    )


def make_ca(common_name: str = "bft-node cluster CA", days: int = VALID_DAYS):
    """A fresh CA: (certificate, private key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    cert = (
        _builder(common_name, common_name, key.public_key(), now, days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return cert, key


def issue(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    names: list[str],
    *,
    not_before: dt.datetime | None = None,
    days: int = VALID_DAYS,
):
    """A member certificate for `names` (the first is its common name), signed by the CA,
    good for serving and for dialing (mutual TLS): (certificate, private key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    issuer = ca_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    cert = (
        _builder(names[0], str(issuer), key.public_key(), start, days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_san(names), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def write_member(keys_dir: Path, name: str, cert: x509.Certificate, key) -> None:
    cert_path, key_path = cert_paths(keys_dir, name)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_private(key_path, key)


def write_cluster_certs(keys_dir: Path, replica_hosts: list[str], clients: list[str]) -> None:
    """The CA and every member's certificate and key, in `keys_dir`."""
    ca_cert, ca_key = make_ca()
    (keys_dir / CA_CERT).write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    _write_private(keys_dir / CA_KEY, ca_key)
    for i, host in enumerate(replica_hosts):
        names = [replica_name(i)] + ([host] if host not in ("", "0.0.0.0") else [])
        write_member(keys_dir, replica_name(i), *issue(ca_cert, ca_key, names))
    for principal in clients:
        write_member(
            keys_dir, client_name(principal), *issue(ca_cert, ca_key, [client_name(principal)])
        )
