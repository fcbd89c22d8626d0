"""What one node's install does, as data: files, artifacts, services, checks (pure)."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

from k8s_workers.config.loader import Cluster, Node, required_artifacts
from k8s_workers.config.models import CGROUP_V1_REFUSED_MINOR
from k8s_workers.render.host_paths import PATHS
from k8s_workers.render.node_files import (
    PLACEHOLDER_SECRETS,
    POD_ROUTES_SERVICE,
    HostFile,
    NodeSecrets,
    kernel_modules,
    node_files,
    pod_routes,
)
from k8s_workers.render.templating import render


@dataclass(frozen=True)
class Artifact:
    name: str
    url: str
    sha256: str
    dest_dir: str
    archive_dir: str | None  # None: the download is the binary; else install this tarball folder
    restarts: str | None


@dataclass(frozen=True)
class NodePlan:
    node: str
    arch: str
    expected_hostname: str | None  # checked before any change unless hostnameOverride is set
    tools: tuple[str, ...]  # refused up front when missing
    dirs: tuple[tuple[str, str], ...]  # (path, mode), created before files
    files: tuple[HostFile, ...]
    artifacts: tuple[Artifact, ...]
    preinstalled: tuple[str, ...]  # binaries that must already be there
    services: tuple[str, ...]  # start order
    modules: tuple[str, ...]
    kubelet_state: tuple[str, ...]  # what the kubelet, runtime and CNI write for themselves; wiped on removal
    resolv_conf: str  # checked for systemd-resolved's stub before any change
    api_server: str  # a bootstrapped kubelet's own kubeconfig is kept pointing here...
    ca_cert_pem: str  # ...and trusting this CA
    token_expires_at: int | None  # a node that has not joined yet cannot with an expired token
    cgroup_v1: str  # on a cgroup v1 host: "allow" (warn), "warn" (1.34 still runs there) or "refuse"
    kubernetes_version: str
    bridge_name: str | None  # the CNI bridge the node's pods hang off (removed with the node)
    bin_dir: str
    node_address: str  # the InternalIP the Node must register with
    readiness_timeout: int  # seconds the install waits for its Node to be Ready (0: not at all)

    @property
    def file_dirs(self) -> tuple[str, ...]:
        """Every folder a file or binary of ours lands in (temp files of a killed run live there)."""
        dirs = {f.path.rsplit("/", 1)[0] for f in self.files}
        dirs |= {a.dest_dir for a in self.artifacts} | {d for d, _ in self.dirs} | {"/etc"}
        return tuple(sorted(dirs))


# Tarball layouts of the upstream release archives.
_ARCHIVE_DIRS = {"containerd": "bin", "cni-plugins": "."}
_RESTARTS = {"kubelet": "kubelet", "kube-proxy": "kube-proxy", "containerd": "containerd"}


def artifacts_for(cluster: Cluster, node: Node) -> tuple[Artifact, ...]:
    if cluster.binaries.source != "download":
        return ()
    out = []
    for name in required_artifacts(cluster):
        spec = cluster.binaries.artifacts[name]  # type: ignore[index]
        version = spec.version or cluster.kubernetes_version
        out.append(
            Artifact(
                name=name,
                url=spec.url.replace("{version}", version).replace("{arch}", node.arch),
                sha256=spec.sha256[node.arch],
                dest_dir=PATHS.cni_bin_dir if name == "cni-plugins" else cluster.binaries.bin_dir,
                archive_dir=_ARCHIVE_DIRS.get(name),
                restarts=_RESTARTS.get(name),
            )
        )
    return tuple(out)


def preinstalled_for(cluster: Cluster) -> tuple[str, ...]:
    if cluster.binaries.source != "preinstalled":
        return ()
    bin_dir = cluster.binaries.bin_dir
    paths = [f"{bin_dir}/kubelet", f"{bin_dir}/kube-proxy"]
    if cluster.container_runtime.type == "containerd":
        paths += [f"{bin_dir}/containerd", f"{bin_dir}/containerd-shim-runc-v2", f"{bin_dir}/runc"]
    if cluster.cni.mode == "bridge":
        paths += [f"{PATHS.cni_bin_dir}/{p}" for p in ("bridge", "host-local", "loopback", "portmap")]
    return tuple(paths)


def tools_for(cluster: Cluster) -> tuple[str, ...]:
    # No `conntrack`: kube-proxy has used netlink instead since 1.32, older than any supported minor.
    tools = [
        "bash", "awk", "base64", "basename", "cat", "chmod", "chown", "cmp", "cp", "cut", "dirname",
        "flock", "grep", "ln", "mkdir", "mktemp", "mv", "readlink", "rm", "sed", "sha256sum", "stat",
        "systemctl", "tr", "uname",
    ]  # fmt: skip
    if cluster.cni.mode == "bridge":
        tools.append("ip")  # pod routes, and removing the bridge with the node
    tools.append({"iptables": "iptables", "nftables": "nft", "ipvs": "ipset"}[cluster.kube_proxy.mode])
    if cluster.kube_proxy.mode == "ipvs":
        tools.append("iptables")  # ipvs mode still programs iptables for masquerading
    if cluster.binaries.source == "download" or cluster.readiness_timeout_seconds > 0:
        tools.append("curl")  # downloads, and the readiness gate's question to the API server
        if any(name in _ARCHIVE_DIRS for name in required_artifacts(cluster)):
            tools += ["tar", "gzip"]
    return tuple(tools)


def dirs_for(cluster: Cluster) -> tuple[tuple[str, str], ...]:
    dirs = [
        ("/etc/kubernetes", "0755"),
        ("/etc/kubernetes/pki", "0755"),
        ("/var/lib/kubelet", "0700"),
        ("/var/lib/kube-proxy", "0700"),
        ("/usr/lib/systemd/system/kubelet.service.d", "0755"),
        (cluster.binaries.bin_dir, "0755"),
        ("/etc/cni", "0755"),
        (PATHS.cni_conf_dir, "0755"),
        ("/opt/cni", "0755"),
        (PATHS.cni_bin_dir, "0755"),
    ]
    if cluster.container_runtime.type == "containerd":
        dirs.append(("/etc/containerd", "0755"))
    return tuple(dirs)


def cgroup_v1_policy(cluster: Cluster, node: Node) -> str:
    if node.allow_cgroup_v1:
        return "allow"
    return "refuse" if cluster.minor >= CGROUP_V1_REFUSED_MINOR else "warn"


def plan_node(cluster: Cluster, node: Node, secrets: NodeSecrets, peers: tuple[Node, ...] = ()) -> NodePlan:
    """peers: every node of the stack (bridge mode routes to their pod CIDRs)."""
    services: tuple[str, ...] = ("kubelet", "kube-proxy")
    kubelet_state: tuple[str, ...] = (
        PATHS.kubelet_kubeconfig, "/var/lib/kubelet", "/var/lib/kube-proxy", "/var/lib/cni",
        "/var/log/pods", "/var/log/containers",
        "/etc/systemd/logind.conf.d/99-kubelet.conf",  # graceful node shutdown's inhibitor delay
    )  # fmt: skip
    if cluster.container_runtime.type == "containerd":
        services = ("containerd", *services)
        kubelet_state += ("/var/lib/containerd", "/run/containerd", "/opt/containerd", "/run/nri")
    if pod_routes(cluster, node, peers) is not None:
        services = (POD_ROUTES_SERVICE, *services)
    plan = NodePlan(
        node=node.name,
        arch=node.arch,
        expected_hostname=None if node.hostname_override else node.name,
        tools=tools_for(cluster),
        dirs=dirs_for(cluster),
        files=node_files(cluster, node, secrets, peers),
        artifacts=artifacts_for(cluster, node),
        preinstalled=preinstalled_for(cluster),
        services=services,
        modules=kernel_modules(cluster),
        kubelet_state=kubelet_state,
        resolv_conf=node.resolv_conf,
        api_server=cluster.api_server,
        ca_cert_pem=cluster.ca_cert_pem,
        token_expires_at=secrets.token_expires_at,
        cgroup_v1=cgroup_v1_policy(cluster, node),
        kubernetes_version=cluster.kubernetes_version,
        bridge_name=cluster.cni.bridge_name if cluster.cni.mode == "bridge" else None,
        bin_dir=cluster.binaries.bin_dir,
        node_address=str(node.address),
        readiness_timeout=cluster.readiness_timeout_seconds,
    )
    # The removal script lands with the install (first of its files), so what the engine keeps per
    # node is a short command that runs it, not the script (docs/performance.md). It removes what
    # this plan placed and, through the host's manifest, what earlier ones did.
    template = "scripts/remove.sh.j2"
    removal = HostFile(PATHS.removal_script, "0700", template, render(template, plan=plan, paths=PATHS), None)
    return dataclasses.replace(plan, files=(removal, *plan.files))


def review_plan(cluster: Cluster, node: Node, peers: tuple[Node, ...] = ()) -> NodePlan:
    """The plan with placeholders for its secrets: what a preview shows (paths, modes, hashes), and
    what each service's restart depends on."""
    return plan_node(cluster, node, PLACEHOLDER_SECRETS, peers)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
