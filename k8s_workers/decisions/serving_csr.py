"""Which kubelet-serving CertificateSigningRequests to approve: only those that match the inventory.

The controller-manager never approves `kubernetes.io/kubelet-serving` requests, because a kubelet
picks its own names: approving blindly would let a node obtain a certificate for another node's
address. A request is approved only if it comes from `system:node:<a declared node>` (in group
`system:nodes`), its subject is exactly that node (CN, and organization `system:nodes`), its usages
are exactly server auth (+ digital signature, key encipherment), and every name it asks for is one of
that node's declared names or addresses, with no other kind of name. Everything else is left alone,
with the reason, so it can be reported.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

SIGNER = "kubernetes.io/kubelet-serving"
ALLOWED_USAGES = frozenset({"digital signature", "key encipherment", "server auth"})
NODE_PREFIX = "system:node:"


@dataclass(frozen=True)
class NodeIdentity:
    """What the inventory says a node may be called."""

    name: str
    addresses: frozenset[str]  # IPs, normalised
    dns_names: frozenset[str]

    @classmethod
    def of(cls, name: str, addresses: Iterable[str], dns_names: Iterable[str] = ()) -> NodeIdentity:
        return cls(name, frozenset(str(ipaddress.ip_address(a)) for a in addresses), frozenset({name, *dns_names}))


@dataclass(frozen=True)
class Verdict:
    csr: str  # the CSR object's name
    node: str | None  # the declared node it is for, when it names one
    approve: bool
    reason: str


def pending(csr: Mapping[str, Any]) -> bool:
    return not any(
        c.get("type") in ("Approved", "Denied", "Failed") for c in csr.get("status", {}).get("conditions") or []
    )


def judge(csr: Mapping[str, Any], inventory: Mapping[str, NodeIdentity]) -> Verdict | None:
    """None for what is not ours to judge (another signer, already decided); else the verdict."""
    spec, name = csr.get("spec", {}), csr.get("metadata", {}).get("name", "?")
    if spec.get("signerName") != SIGNER or not pending(csr):
        return None
    username = spec.get("username", "")
    node_name = username.removeprefix(NODE_PREFIX) if username.startswith(NODE_PREFIX) else None

    def refuse(reason: str) -> Verdict:
        return Verdict(name, node_name if node_name in inventory else None, False, reason)

    if node_name is None:
        return refuse(f"requested by {username!r}, not by a node")
    node = inventory.get(node_name)
    if node is None:
        return refuse(f"requested by {username}, which is not a node of this stack")
    if "system:nodes" not in (spec.get("groups") or []):
        return refuse(f"{username} is not in group system:nodes")
    usages = set(spec.get("usages") or [])
    if "server auth" not in usages or not usages <= ALLOWED_USAGES:
        return refuse(f"usages {sorted(usages)} are not server auth (+ digital signature, key encipherment)")
    try:
        request = x509.load_pem_x509_csr(base64.b64decode(spec.get("request", "")))
    except ValueError as exc:
        return refuse(f"the request does not parse: {exc}")
    common_names = [a.value for a in request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    organizations = [a.value for a in request.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    if common_names != [username]:
        return refuse(f"subject CN {common_names} is not {username}")
    if organizations != ["system:nodes"]:
        return refuse(f"subject organization {organizations} is not exactly system:nodes")
    if len(request.subject) != 2:
        return refuse("the subject has attributes other than CN and O")
    try:
        names = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return refuse("no subject alternative names")
    ips = {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    dns = set(names.get_values_for_type(x509.DNSName))
    others = [n for n in names if not isinstance(n, x509.IPAddress | x509.DNSName)]
    if others:
        return refuse(f"names of other kinds: {sorted(type(n).__name__ for n in others)}")
    if not ips <= node.addresses:
        return refuse(f"addresses {sorted(ips - node.addresses)} are not declared for {node.name}")
    if not dns <= node.dns_names:
        return refuse(f"DNS names {sorted(dns - node.dns_names)} are not declared for {node.name}")
    if not ips and not dns:
        return refuse("no subject alternative names")
    return Verdict(name, node.name, True, f"{node.name}: names {sorted(dns) + sorted(ips)} match the inventory")


def judge_all(csrs: Iterable[Mapping[str, Any]], inventory: Mapping[str, NodeIdentity]) -> list[Verdict]:
    return [v for v in (judge(c, inventory) for c in csrs) if v is not None]
