"""What the lab cluster sees once the program's install ran on real nodes: Nodes that join and go
Ready with the pinned version, certificates issued through TLS bootstrapping, pods on every node
that reach each other across nodes, and Services that kube-proxy programs (iptables and nftables).
(`kubectl logs`/`exec` after the program approves serving certificates: test_join.py.)"""

from __future__ import annotations

import base64
import re
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from lab import cluster, pins, remote
from lab.install import install_jobs, lab_token
from lab.paths import LAB_CA_CERT
from tests.e2e.helpers import install, wait_for

NAMESPACE = "k8sw-e2e"
PORT = 8080


# ------------------------------------------------------------------ a workload


def _pod(name: str, node: str, args: list[str] | None = None) -> dict[str, Any]:
    env = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
    ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": "echo" if args is None else "client"}},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node},  # placed by the real scheduler
            "restartPolicy": "Always" if args is None else "Never",
            "terminationGracePeriodSeconds": 1,
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": "echo",
                    "image": pins.WORKLOAD_IMAGE,
                    "imagePullPolicy": "Never",  # imported on each node: no registry is reachable
                    "args": args or [],
                    "env": env,
                    "ports": [] if args else [{"containerPort": PORT}],
                }
            ],
        },
    }


def _pods(selector: str) -> dict[str, dict[str, Any]]:
    return {p["metadata"]["name"]: p for p in cluster.get("pods", "-n", NAMESPACE, "-l", selector)["items"]}


def run_workload(nodes: list[str]) -> tuple[dict[str, str], str]:
    """An echo server pod on every node and a Service over them; (node -> pod IP, Service IP)."""
    cluster.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true", timeout=120)
    cluster.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}])
    wait_for(
        "the namespace's default ServiceAccount",
        lambda: cluster.kubectl("get", "sa", "default", "-n", NAMESPACE, check=False).returncode == 0,
    )
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "echo", "namespace": NAMESPACE},
        "spec": {"selector": {"app": "echo"}, "ports": [{"port": 80, "targetPort": PORT}]},
    }
    cluster.apply([service, *(_pod(f"echo-{node}", node) for node in nodes)])

    def running() -> dict[str, str] | None:
        pods = _pods("app=echo")
        ready = {
            p["spec"].get("nodeName", ""): p["status"].get("podIP", "")
            for p in pods.values()
            if any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
        }
        return ready if set(ready) == set(nodes) else None

    ips = wait_for("an echo pod Ready on every node", running, timeout=120)
    service_ip = cluster.get("service", "echo", "-n", NAMESPACE)["spec"]["clusterIP"]
    return ips, service_ip


def _client_exit_codes(clients: dict[str, tuple[str, str, str]]) -> dict[str, int]:
    """name -> (node, URL, expected text): each runs to completion; name -> its exit code."""
    cluster.apply(_pod(name, node, ["-get", url, "-expect", expect]) for name, (node, url, expect) in clients.items())

    def finished() -> dict[str, int] | None:
        codes = {}
        for name, pod in _pods("app=client").items():
            for status in pod["status"].get("containerStatuses", []):
                terminated = status.get("state", {}).get("terminated")
                if terminated:
                    codes[name] = terminated["exitCode"]
        return codes if set(clients) <= set(codes) else None

    return wait_for("client pods finished", finished, timeout=120)


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
        mine = _newest_first([
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


def _newest_first(csrs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(csrs, key=lambda c: c["metadata"]["creationTimestamp"], reverse=True)


def _serving_csrs(node: str) -> list[dict[str, Any]]:
    """The node's kubelet-serving requests, newest first (earlier installs left theirs)."""
    return _newest_first([
        c for c in cluster.get("csr")["items"]
        if c["spec"]["signerName"] == "kubernetes.io/kubelet-serving" and c["spec"]["username"] == f"system:node:{node}"
    ])  # fmt: skip


def test_serving_certificate_request_names_exactly_the_node(installed):
    """serverTLSBootstrap: each kubelet asks for a serving certificate for its own name and its
    declared address only (nothing approves it yet: the controller-manager never does)."""
    _, jobs = installed
    for job in jobs:
        requests = wait_for(
            f"{job.host.name}: a kubelet-serving CSR", lambda job=job: _serving_csrs(job.host.name), timeout=60
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
    assert _client_exit_codes(clients) == dict.fromkeys(clients, 0)


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
    for job in jobs:
        nat = remote.shell(job.host, "iptables-save -t nat")
        assert f"-d {service_ip}/32" in nat and "KUBE-SVC-" in nat, job.host.name
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
