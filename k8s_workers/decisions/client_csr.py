"""kube-proxy's client certificate from the cluster's own CSR API, without the CA key (pure).

The program makes kube-proxy's key, asks the signer `kubernetes.io/kube-apiserver-client` for a
certificate (a CertificateSigningRequest it creates), approves that request and no other, and
checks what comes back. Approving is the dangerous part: a request names the identity it gets, so
the program approves only a request that is exactly its own:

| checked | on |
|---|---|
| its subject is CN `system:kube-proxy` with no organization (no group, `system:masters` least of all) | our request, before it is sent |
| it was created by this program's own user, with our request bytes, our signer and client-auth usages only | the CSR read back, before approving |
| the certificate is for `system:kube-proxy`, for client auth, and for our key | the certificate issued |
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SIGNER = "kubernetes.io/kube-apiserver-client"
USAGES = ("client auth", "digital signature")
COMMON_NAME = "system:kube-proxy"
# What to check when the signer never answers: the controller-manager signs this signer only with
# a CA it was given (kubeadm and most distributions do; managed control planes may not).
SIGNER_FLAGS = (
    "kube-controller-manager --cluster-signing-cert-file/--cluster-signing-key-file "
    "(or --cluster-signing-kube-apiserver-client-cert-file/-key-file)"
)


def _public_der(key: Any) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def request_problems(request_pem: str) -> list[str]:
    """What is wrong with our own request before it is sent: it must ask for kube-proxy, no more."""
    request = x509.load_pem_x509_csr(request_pem.encode())
    names = [a.value for a in request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    problems = [] if names == [COMMON_NAME] else [f"its subject's CN is {names}, not {COMMON_NAME!r}"]
    if request.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME):
        problems.append("its subject has an organization (a group): kube-proxy's identity has none")
    if not request.is_signature_valid:
        problems.append("its signature does not verify")
    return problems


def approval_problems(found: Mapping[str, Any], request_pem: str, username: str) -> list[str]:
    """Why the CSR read back is not the one this program created (then it is not approved)."""
    spec = found.get("spec") or {}
    problems = []
    if base64.b64decode(spec.get("request", "")).decode(errors="replace").strip() != request_pem.strip():
        problems.append("its request is not ours")
    if spec.get("signerName") != SIGNER:
        problems.append(f"its signer is {spec.get('signerName')!r}, not {SIGNER!r}")
    if sorted(spec.get("usages") or []) != sorted(USAGES):
        problems.append(f"its usages are {spec.get('usages')}, not {list(USAGES)}")
    if spec.get("username") != username:
        problems.append(f"it was created by {spec.get('username')!r}, not by this program ({username!r})")
    conditions = {c.get("type") for c in (found.get("status") or {}).get("conditions") or []}
    if conditions & {"Denied", "Failed"}:
        problems.append(f"it is {', '.join(sorted(conditions & {'Denied', 'Failed'}))}")
    return problems


def certificate_problems(certificate_pem: str, request_pem: str) -> list[str]:
    """Why the issued certificate is not kube-proxy's for our key."""
    cert = x509.load_pem_x509_certificate(certificate_pem.encode())
    request = x509.load_pem_x509_csr(request_pem.encode())
    problems = []
    if _public_der(cert.public_key()) != _public_der(request.public_key()):
        problems.append("it is not for our key")
    names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if names != [COMMON_NAME]:
        problems.append(f"its CN is {names}, not {COMMON_NAME!r}")
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = None
    if usages is None or ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
        problems.append("it is not for client auth")
    return problems


def not_after(certificate_pem: str) -> int:
    """The certificate's expiry, epoch seconds."""
    return int(x509.load_pem_x509_certificate(certificate_pem.encode()).not_valid_after_utc.timestamp())


def renewal_due(expires_at: int | None, early_renewal_hours: int, now: float) -> bool:
    """True from `early_renewal_hours` before the certificate expires (as pulumi-tls renews)."""
    return expires_at is not None and now >= expires_at - early_renewal_hours * 3600
