"""What the lab cluster sees once the program's install ran on real nodes: Nodes that join and go
Ready with the pinned version, certificates issued through TLS bootstrapping, pods on every node
that reach each other across nodes, and Services that kube-proxy programs (iptables and nftables).
(`kubectl logs`/`exec` after the program approves serving certificates: test_join.py.)"""

from __future__ import annotations

import base64
import re

from cryptography import x509
from cryptography.x509.oid import NameOID

from lab import cluster, pins, remote
from lab.install import install_jobs, lab_token
from lab.paths import LAB_CA_CERT
from tests.e2e.helpers import PORT, client_exit_codes, install, newest_first, run_workload, serving_csrs, wait_for

# ------------------------------------------------------------------ joining


def test_nodes_join_ready_with_the_pinned_version_and_declared_address(installed):
    config, jobs = installed
    nodes = cluster.nodes()
    for job in jobs:
        node = nodes[job.host.name]
        assert cluster.conditions(node)["Ready"] == "True"
        info = node["status"]["nodeInfo"]
        assert info["kubeletVersion"] == pins.KUBERNETES
        assert info["containerRuntimeVersion"] == f"containerd://{pins.CONTAINERD.lstrip('v')}"
        addresses = {(a["type"], a["address"]) for a in node["status"]["addresses"]}
        assert addresses == {("InternalIP", job.host.address), ("Hostname", job.host.name)}
        declared = next(n for n in config.nodes if n.name == job.host.name)
        assert node["metadata"]["labels"]["kubernetes.io/hostname"] == declared.name


def test_kubelet_client_certificates_come_from_tls_bootstrapping(installed):
    """Each kubelet asked with its node's bootstrap token, the controller-manager approved it
    automatically (the program's RBAC), and the kubelet now holds system:node:<name>."""
    _, jobs = installed
    csrs = cluster.get("csr")["items"]
    ca = x509.load_pem_x509_certificate(LAB_CA_CERT.read_bytes())
    for job in jobs:
        token_id = lab_token(job.host.name)[0].split(".")[0]
        mine = newest_first([
            c for c in csrs
            if c["spec"]["signerName"] == "kubernetes.io/kube-apiserver-client-kubelet"
            and c["spec"]["username"] == f"system:bootstrap:{token_id}"
        ])  # fmt: skip
        assert mine, f"{job.host.name}: no client CSR from its bootstrap token"
        conditions = {c["type"]: c.get("reason") for c in mine[0]["status"]["conditions"]}
        assert conditions.get("Approved") == "AutoApproved"
        assert mine[0]["status"].get("certificate")
        pem = remote.shell(job.host, "cat /var/lib/kubelet/pki/kubelet-client-current.pem")
        cert = x509.load_pem_x509_certificate(
            re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", pem, re.S).group().encode()
        )  # type: ignore[union-attr]
        cert.verify_directly_issued_by(ca)
        subject = {a.oid: a.value for a in cert.subject}
        assert subject[NameOID.COMMON_NAME] == f"system:node:{job.host.name}"
        assert subject[NameOID.ORGANIZATION_NAME] == "system:nodes"


def test_serving_certificate_request_names_exactly_the_node(installed):
    """serverTLSBootstrap: each kubelet asks for a serving certificate for its own name and its
    declared address only (nothing approves it yet: the controller-manager never does)."""
    _, jobs = installed
    for job in jobs:
        requests = wait_for(
            f"{job.host.name}: a kubelet-serving CSR", lambda job=job: serving_csrs(job.host.name), timeout=60
        )
        csr = x509.load_pem_x509_csr(base64.b64decode(requests[0]["spec"]["request"]))
        names = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == [job.host.address]
        assert names.get_values_for_type(x509.DNSName) == [job.host.name]
        assert not names.get_values_for_type(x509.RFC822Name) and not names.get_values_for_type(
            x509.UniformResourceIdentifier
        )
        assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == f"system:node:{job.host.name}"
        assert set(requests[0]["spec"]["usages"]) == {"digital signature", "server auth"} | (
            set(requests[0]["spec"]["usages"]) & {"key encipherment"}
        )


# ------------------------------------------------------------------ workloads


def test_pods_run_on_every_node_and_reach_each_other_across_nodes(installed):
    _, jobs = installed
    names = [j.host.name for j in jobs]
    ips, _ = run_workload(names)
    # Each node's client fetches from the echo pod on the next node: pod-to-pod across nodes.
    clients = {
        f"client-{a}-to-{b}": (a, f"http://{ips[b]}:{PORT}/", f"node={b}")
        for a, b in zip(names, names[1:] + names[:1], strict=True)
    }
    assert client_exit_codes(clients) == dict.fromkeys(clients, 0)


def _curl_service(host, service_ip: str, tries: int = 12) -> set[str]:  # type: ignore[no-untyped-def]
    out = remote.shell(
        host, f"for i in $(seq {tries}); do curl -s --max-time 3 http://{service_ip}/ || echo FAILED; done"
    )
    assert "FAILED" not in out, out
    return set(re.findall(r"pod=(\S+)", out))


def test_services_are_programmed_by_kube_proxy_in_iptables_and_nftables_mode(installed, lab_config, systemd_hosts):
    _, jobs = installed
    names = [j.host.name for j in jobs]
    _, service_ip = run_workload(names)
    # iptables mode: the Service's rules, and answers from pods on other nodes too.
    for job in jobs:  # kube-proxy programs a new Service on its next sync, not at once
        wait_for(
            f"{job.host.name}: the Service in iptables",
            lambda job=job: f"-d {service_ip}/32" in (nat := remote.shell(job.host, "iptables-save -t nat"))
            and "KUBE-SVC-" in nat,
            timeout=60,
        )
    for job in jobs:  # 12 tries over 3 endpoints: all local by chance is one in half a million
        answered = _curl_service(job.host, service_ip)
        assert answered - {f"echo-{job.host.name}"}, f"{job.host.name}: no answer from another node's pod"
    # nftables mode: the program's one-setting change, applied to every node.
    results = install(
        install_jobs(lab_config(edit=lambda raw: raw["cluster"].update(kubeProxy={"mode": "nftables"})), systemd_hosts)
    )
    assert all(r.summary["services_restarted"] == ["kube-proxy"] for r in results.values())
    for job in jobs:
        wait_for(
            f"{job.host.name}: the Service in nftables",
            lambda job=job: service_ip in remote.shell(job.host, "nft list table ip kube-proxy 2>/dev/null || true"),
            timeout=60,
        )
        assert _curl_service(job.host, service_ip)
