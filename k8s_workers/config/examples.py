"""The example values the shipped dev stack (Pulumi.dev.yaml) holds, so a stack still carrying one
is told what to put there instead (tests/test_config_errors.py keeps these equal to that file)."""

from __future__ import annotations

import hashlib
import ssl

# sha256 of the DER of the dev stack's example CA (CN=k8s-workers-dev-example-ca; its key was discarded).
EXAMPLE_CA_SHA256 = "5e3303db3f3db408149d2e0b5c5586a83861826523634a53787a84842dcd030e"
EXAMPLE_HOST_KEYS = frozenset({
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEhSgevTAKrjbMaZ5X8qNdw81UKyZw/x0D2JN37RYQIm",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMxuNzq+CVuTcSJkD51wgZWqB5v9x9GjMBnpztUIMX65",
})  # fmt: skip


def is_example_ca(pem: str) -> bool:
    try:
        der = ssl.PEM_cert_to_DER_cert(pem.strip() + "\n")
    except ValueError:
        return False
    return hashlib.sha256(der).hexdigest() == EXAMPLE_CA_SHA256


def is_example_host_key(key: str | None) -> bool:
    return key is not None and " ".join(key.split()[:2]) in EXAMPLE_HOST_KEYS
