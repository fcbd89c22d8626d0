"""Test CAs and keys, generated at test time (never committed)."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from lab.pki import new_ca


@dataclass(frozen=True)
class TestCa:
    cert_pem: str
    key_pem: str


def make_ca(common_name: str = "k8s-workers-test-ca") -> TestCa:
    return TestCa(*new_ca(common_name, days=30))


def make_ssh_key() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()


def make_host_key() -> str:
    """An SSH host public key line, as `ssh-keyscan` prints it (without the host)."""
    key = ed25519.Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return public.decode()
