"""Test and lab PKI: a CA and client certificates, made with `cryptography` (never committed)."""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_PEM = serialization.Encoding.PEM


def _key_pem(key: ec.EllipticCurvePrivateKey, fmt: serialization.PrivateFormat) -> str:
    return key.private_bytes(_PEM, fmt, serialization.NoEncryption()).decode()


def new_ca(common_name: str, days: int) -> tuple[str, str]:
    """(certificate PEM, PKCS#8 key PEM) of a fresh self-signed CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(_PEM).decode(), _key_pem(key, serialization.PrivateFormat.PKCS8)


def certificate(
    ca_cert_pem: str,
    ca_key_pem: str,
    common_name: str,
    days: int,
    *,
    organizations: tuple[str, ...] = (),
    server_names: tuple[str, ...] = (),  # DNS names and IP addresses: a serving certificate
) -> tuple[str, str]:
    """(certificate PEM, key PEM) signed by the CA: client auth, plus server auth with SANs."""
    ca_key = serialization.load_pem_private_key(ca_key_pem.encode(), password=None)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem.encode())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    unused = ("content_commitment", "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign",
              "encipher_only", "decipher_only")  # fmt: skip
    subject = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    subject.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH] + ([ExtendedKeyUsageOID.SERVER_AUTH] if server_names else [])
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(subject))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_encipherment=True, **dict.fromkeys(unused, False)),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    if server_names:
        builder = builder.add_extension(x509.SubjectAlternativeName([_san(n) for n in server_names]), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    return cert.public_bytes(_PEM).decode(), _key_pem(key, serialization.PrivateFormat.TraditionalOpenSSL)


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def client_certificate(ca_cert_pem: str, ca_key_pem: str, common_name: str, days: int) -> tuple[str, str]:
    """(certificate PEM, key PEM) for client auth, signed by the CA: what pulumi-tls makes."""
    return certificate(ca_cert_pem, ca_key_pem, common_name, days)


def service_account_key() -> tuple[str, str]:
    """(public PEM, private PEM) of a key pair for signing service-account tokens."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(_PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return public, _key_pem(key, serialization.PrivateFormat.PKCS8)


def write_private(path: Path, data: str) -> None:
    """A key file that is 0600 from its first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(data)
