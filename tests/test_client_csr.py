"""kube-proxy's certificate from the CSR API: the program approves exactly its own request, and
checks what the signer returns (k8s_workers/decisions/client_csr.py)."""

from __future__ import annotations

import base64
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from k8s_workers.decisions.client_csr import (
    SIGNER,
    approval_problems,
    certificate_problems,
    renewal_due,
    request_problems,
)
from k8s_workers.render.cluster_objects import kube_proxy_csr
from tests.harness import sign_request
from tests.pki import make_ca

ME = "k8s-workers-admin"


def _request(common_name: str = "system:kube-proxy", organization: str | None = None) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs)).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def _as_created(request_pem: str, **spec: Any) -> dict[str, Any]:
    """The request as the apiserver returns it: the manifest's spec plus who created it."""
    manifest = kube_proxy_csr(request_pem, 3600, "k8s-workers/dev")
    return {"metadata": {"name": "k8s-workers-kube-proxy-x1"}, "spec": {**manifest["spec"], "username": ME, **spec}}


def _issued(request_pem: str, uses: list[str] | None = None) -> str:
    ca = make_ca("cluster")
    inputs = {
        "certRequestPem": request_pem,
        "caCertPem": ca.cert_pem,
        "caPrivateKeyPem": ca.key_pem,
        "validityPeriodHours": 24,
        "allowedUses": uses if uses is not None else ["digital_signature", "client_auth"],
    }
    return sign_request(inputs)["certPem"]


def test_the_request_asks_the_client_signer_for_kube_proxy_only():
    request = _request()
    assert request_problems(request) == []
    manifest = kube_proxy_csr(request, 3600, "k8s-workers/dev")
    assert manifest["metadata"]["generateName"] == "k8s-workers-kube-proxy-"  # never someone else's name
    assert manifest["spec"]["signerName"] == SIGNER == "kubernetes.io/kube-apiserver-client"
    assert manifest["spec"]["usages"] == ["client auth", "digital signature"]
    assert manifest["spec"]["expirationSeconds"] == 3600
    assert base64.b64decode(manifest["spec"]["request"]).decode() == request
    assert request_problems(_request("system:node:n1")) == [
        "its subject's CN is ['system:node:n1'], not 'system:kube-proxy'"
    ]
    assert "organization" in request_problems(_request(organization="system:masters"))[0]


def test_only_our_own_request_is_approved():
    ours = _request()
    assert approval_problems(_as_created(ours), ours, ME) == []
    assert approval_problems(_as_created(ours, username="mallory"), ours, ME) == [
        f"it was created by 'mallory', not by this program ({ME!r})"
    ]
    assert approval_problems(_as_created(_request()), ours, ME) == ["its request is not ours"]
    assert approval_problems(_as_created(ours, signerName="kubernetes.io/kubelet-serving"), ours, ME) == [
        "its signer is 'kubernetes.io/kubelet-serving', not 'kubernetes.io/kube-apiserver-client'"
    ]
    assert approval_problems(_as_created(ours, usages=["client auth", "server auth"]), ours, ME) == [
        "its usages are ['client auth', 'server auth'], not ['client auth', 'digital signature']"
    ]
    denied = {**_as_created(ours), "status": {"conditions": [{"type": "Denied"}]}}
    assert approval_problems(denied, ours, ME) == ["it is Denied"]


def test_the_issued_certificate_is_checked_against_our_key_name_and_usage():
    ours = _request()
    assert certificate_problems(_issued(ours), ours) == []
    assert certificate_problems(_issued(_request()), ours) == ["it is not for our key"]
    assert certificate_problems(_issued(ours, ["digital_signature", "server_auth"]), ours) == [
        "it is not for client auth"
    ]


def test_renewal_is_due_from_early_renewal_hours_before_expiry():
    expires = 1_000_000
    assert not renewal_due(expires, 10, expires - 10 * 3600 - 1)
    assert renewal_due(expires, 10, expires - 10 * 3600)
    assert not renewal_due(None, 10, expires)
