"""Which kubelet-serving CSRs the program approves, judged on real requests made by `cryptography`."""

from __future__ import annotations

import base64
import ipaddress
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from k8s_workers.decisions.serving_csr import NodeIdentity, judge, judge_all

INVENTORY = {
    "worker-1": NodeIdentity.of("worker-1", ["10.240.0.11"]),
    "worker-2": NodeIdentity.of("worker-2", ["10.240.0.12"]),
}


def request(
    cn: str = "system:node:worker-1", orgs: tuple[str, ...] = ("system:nodes",), names: list[Any] | None = None
) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs] + [
        x509.NameAttribute(NameOID.COMMON_NAME, cn)
    ]
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(subject))
    sans = (
        names if names is not None else [x509.DNSName("worker-1"), x509.IPAddress(ipaddress.ip_address("10.240.0.11"))]
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    pem = builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    return base64.b64encode(pem).decode()


def csr(
    username: str = "system:node:worker-1",
    signer: str = "kubernetes.io/kubelet-serving",
    usages: tuple[str, ...] = ("digital signature", "server auth"),
    groups: tuple[str, ...] = ("system:nodes", "system:authenticated"),
    conditions: list[dict[str, str]] | None = None,
    **request_args: Any,
) -> dict[str, Any]:
    return {
        "metadata": {"name": "csr-x"},
        "spec": {"signerName": signer, "username": username, "groups": list(groups), "usages": list(usages),
                 "request": request(**request_args)},
        "status": {"conditions": conditions or []},
    }  # fmt: skip


def test_a_kubelets_own_request_is_approved():
    verdict = judge(csr(), INVENTORY)
    assert verdict is not None and verdict.approve, verdict
    assert verdict.node == "worker-1"
    with_encipherment = judge(csr(usages=("digital signature", "key encipherment", "server auth")), INVENTORY)
    assert with_encipherment is not None and with_encipherment.approve


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        (
            {"names": [x509.DNSName("worker-1"), x509.IPAddress(ipaddress.ip_address("10.240.0.12"))]},
            "addresses ['10.240.0.12']",
        ),
        (
            {
                "names": [
                    x509.DNSName("worker-1"),
                    x509.IPAddress(ipaddress.ip_address("10.240.0.11")),
                    x509.DNSName("api.example.org"),
                ]
            },
            "DNS names ['api.example.org']",
        ),
        ({"names": [x509.DNSName("worker-1"), x509.RFC822Name("a@example.org")]}, "names of other kinds"),
        ({"names": [x509.DNSName("worker-1"), x509.UniformResourceIdentifier("spiffe://x")]}, "names of other kinds"),
        ({"names": []}, "no subject alternative names"),
        ({"cn": "system:node:worker-2"}, "subject CN ['system:node:worker-2'] is not system:node:worker-1"),
        ({"orgs": ("system:nodes", "system:masters")}, "organization ['system:nodes', 'system:masters']"),
        ({"orgs": ()}, "organization [] is not exactly system:nodes"),
        ({"usages": ("digital signature", "client auth")}, "usages"),
        ({"usages": ("digital signature", "server auth", "client auth")}, "usages"),
        ({"username": "system:node:worker-9", "cn": "system:node:worker-9"}, "not a node of this stack"),
        ({"username": "system:bootstrap:abc123"}, "not by a node"),
        ({"groups": ("system:authenticated",)}, "not in group system:nodes"),
    ],
    ids=[
        "other-node-address",
        "extra-dns",
        "email",
        "uri",
        "no-sans",
        "other-cn",
        "extra-org",
        "no-org",
        "client-usages",
        "mixed-usages",
        "undeclared-node",
        "bootstrap-user",
        "not-in-nodes",
    ],
)
def test_anything_else_is_left_alone_with_the_reason(changes, reason):
    verdict = judge(csr(**changes), INVENTORY)
    assert verdict is not None and not verdict.approve
    assert reason in verdict.reason, verdict.reason


def test_another_node_asking_for_this_nodes_name_is_refused():
    forged = csr(username="system:node:worker-2", cn="system:node:worker-2")  # worker-1's names by default
    verdict = judge(forged, INVENTORY)
    assert verdict is not None and not verdict.approve and verdict.node == "worker-2"
    assert "10.240.0.11" in verdict.reason or "worker-1" in verdict.reason


def test_other_signers_and_decided_requests_are_not_ours():
    assert judge(csr(signer="kubernetes.io/kube-apiserver-client-kubelet"), INVENTORY) is None
    assert judge(csr(conditions=[{"type": "Approved", "status": "True"}]), INVENTORY) is None
    assert judge(csr(conditions=[{"type": "Denied", "status": "True"}]), INVENTORY) is None
    assert [v.approve for v in judge_all([csr(), csr(signer="example.com/other")], INVENTORY)] == [True]
