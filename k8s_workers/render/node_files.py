"""Every file a worker node receives, rendered from `templates/` (pure: no Pulumi).

The same function feeds the Pulumi component (with real secrets, inside an apply)
and `python -m components render` (with placeholders), so review output and what
lands on hosts cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from k8s_workers.config.loader import Cluster, Node, deep_merge
from k8s_workers.decisions.node_metadata import STARTUP_TAINT
from k8s_workers.render.host_paths import PATHS
from k8s_workers.render.templating import parse_toml, parse_yaml, render

IPVS_MODULES = ("ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "nf_conntrack")
POD_ROUTE_PROTOCOL = 77  # marks our pod-network routes (no routing daemon uses this number)
POD_ROUTES_SERVICE = "k8s-workers-pod-routes"


@dataclass(frozen=True)
class HostFile:
    path: str
    mode: str  # octal, e.g. "0600"
    template: str
    content: str
    restarts: str | None  # the service restarted when this file changes
    secret: bool = False  # holds a token or a private key


@dataclass(frozen=True)
class NodeSecrets:
    """The per-node values that only exist at `pulumi up` (or are secret)."""

    bootstrap_token: str  # "<id>.<secret>"
    kube_proxy_cert_pem: str
    kube_proxy_key_pem: str
    token_expires_at: int | None = None  # epoch seconds; lets the install refuse an expired token


PLACEHOLDER_SECRETS = NodeSecrets(
    bootstrap_token="<token-id>.<token-secret>",
    kube_proxy_cert_pem="<kube-proxy client certificate, signed by the cluster CA at pulumi up>\n",
    kube_proxy_key_pem="<kube-proxy private key, a Pulumi secret>\n",
)


def runtime_unit(cluster: Cluster) -> str | None:
    return "containerd.service" if cluster.container_runtime.type == "containerd" else None


def kernel_modules(cluster: Cluster) -> tuple[str, ...]:
    modules = ("overlay", "br_netfilter")
    if cluster.kube_proxy.mode == "ipvs":
        modules += IPVS_MODULES
    return modules


def kubelet_configuration(cluster: Cluster, node: Node) -> dict[str, Any]:
    """The node's KubeletConfiguration: secure defaults, then its overrides."""
    base = parse_yaml(
        render(
            "kubelet/config-defaults.yaml.j2",
            paths=PATHS,
            runtime_endpoint=cluster.container_runtime.endpoint,
            cluster_domain=cluster.cluster_domain,
            cluster_dns=str(cluster.cluster_dns),
            resolv_conf=node.resolv_conf,
            max_pods=node.max_pods,
            pod_pids_limit=node.pod_pids_limit,
            eviction_hard=node.eviction_hard,
            system_reserved=node.system_reserved,
            kube_reserved=node.kube_reserved,
            startup_taint=STARTUP_TAINT,
            allow_cgroup_v1=node.allow_cgroup_v1,
            # self-signed: the kubelet serves a certificate of its own and asks for none
            server_tls_bootstrap=cluster.serving_certificates != "self-signed",
        )
    )
    return deep_merge(base, node.kubelet)


def containerd_configuration(cluster: Cluster) -> dict[str, Any]:
    """containerd's config.toml as data: the defaults, then cluster.containerRuntime.config."""
    base = parse_toml(
        render(
            "containerd/config-defaults.toml.j2",
            major=cluster.container_runtime.containerd_major,
            sandbox_image=cluster.container_runtime.sandbox_image,
            # containerd 2.0 reads `bin_dir`; 2.1 and later `bin_dirs`.
            cni_bin_dirs=(cluster.containerd_version or (2, 1)) >= (2, 1),
        )
    )
    return deep_merge(base, cluster.container_runtime.config)


def pod_routes(cluster: Cluster, node: Node, peers: tuple[Node, ...]) -> tuple[tuple[str, str], ...] | None:
    """(pod CIDR, via address) of every other node, or None when the program sets no routes."""
    if cluster.cni.mode != "bridge" or not cluster.cni.pod_routes:
        return None
    return tuple(
        (str(peer.pod_cidr), str(peer.address))
        for peer in peers
        if peer.name != node.name and peer.pod_cidr is not None and peer.address.version == peer.pod_cidr.version
    )


def kubelet_node_args(node: Node) -> list[str]:
    args = [f"--node-ip={node.address}", f"--cert-dir={PATHS.kubelet_pki}"]
    if node.hostname_override:
        args.append(f"--hostname-override={node.name}")
    return args


def node_files(
    cluster: Cluster, node: Node, secrets: NodeSecrets, peers: tuple[Node, ...] = ()
) -> tuple[HostFile, ...]:
    common = {"paths": PATHS, "node_name": node.name, "bin_dir": cluster.binaries.bin_dir}
    kube = {
        "cluster_name": cluster.name,
        "api_server": cluster.api_server,
        "ca_cert_pem": cluster.ca_cert_pem,
    }

    def file(path: str, mode: str, template: str, restarts: str | None, secret: bool = False, **ctx: Any) -> HostFile:
        return HostFile(path, mode, template, render(template, **common, **ctx), restarts, secret)

    files = [
        file(PATHS.ca_cert, "0644", "pki/ca.crt.j2", "kubelet", ca_cert_pem=cluster.ca_cert_pem),
        file(
            PATHS.bootstrap_kubeconfig,
            "0600",
            "kubeconfig/bootstrap-kubelet.conf.j2",
            "kubelet",
            secret=True,
            bootstrap_token=secrets.bootstrap_token,
            **kube,
        ),
        file(
            PATHS.kubelet_config,
            "0600",
            "kubelet/config.yaml.j2",
            "kubelet",
            document=kubelet_configuration(cluster, node),
        ),
        file(PATHS.kubelet_flags, "0600", "kubelet/kubelet-flags.env.j2", "kubelet", node_args=kubelet_node_args(node)),
        file(
            PATHS.kubelet_extra_args,
            "0600",
            "kubelet/default-kubelet.j2",
            "kubelet",
            extra_args=node.kubelet_extra_args,
        ),
        file(PATHS.kubelet_unit, "0600", "kubelet/kubelet.service.j2", "kubelet", runtime_unit=runtime_unit(cluster)),
        file(PATHS.kubelet_dropin, "0600", "kubelet/10-k8s-workers.conf.j2", "kubelet"),
        file(
            PATHS.kube_proxy_kubeconfig,
            "0600",
            "kubeconfig/kube-proxy.conf.j2",
            "kube-proxy",
            secret=True,
            kube_proxy_cert_pem=secrets.kube_proxy_cert_pem,
            kube_proxy_key_pem=secrets.kube_proxy_key_pem,
            **kube,
        ),
        file(
            PATHS.kube_proxy_config,
            "0600",
            "kube-proxy/config.conf.j2",
            "kube-proxy",
            proxy_mode=cluster.kube_proxy.mode,
            pod_cidr=str(cluster.pod_cidr),
            hostname_override=node.hostname_override,
            ipvs_scheduler=cluster.kube_proxy.ipvs_scheduler,
        ),
        file(PATHS.kube_proxy_unit, "0600", "kube-proxy/kube-proxy.service.j2", "kube-proxy"),
        file(
            PATHS.crictl_config,
            "0644",
            "containerd/crictl.yaml.j2",
            None,
            runtime_endpoint=cluster.container_runtime.endpoint,
        ),
    ]
    if cluster.container_runtime.type == "containerd":
        files += [
            file(
                PATHS.containerd_config,
                "0644",
                "containerd/config.toml.j2",
                "containerd",
                major=cluster.container_runtime.containerd_major,
                document=containerd_configuration(cluster),
            ),
            file(PATHS.containerd_unit, "0600", "containerd/containerd.service.j2", "containerd"),
        ]
    if cluster.cni.mode == "bridge":
        assert node.pod_cidr is not None  # config validation requires it in bridge mode
        files.append(
            file(
                PATHS.bridge_conflist,
                "0644",
                "cni/10-bridge.conflist.j2",
                None,
                bridge_name=cluster.cni.bridge_name,
                node_pod_cidr=str(node.pod_cidr),
                default_route="0.0.0.0/0" if node.pod_cidr.version == 4 else "::/0",
            )
        )
    routes = pod_routes(cluster, node, peers)
    if routes is not None:
        files.append(
            file(
                PATHS.pod_routes_unit,
                "0644",
                "cni/pod-routes.service.j2",
                POD_ROUTES_SERVICE,
                routes=routes,
                route_protocol=POD_ROUTE_PROTOCOL,
            )
        )
    files += [
        # IPv6 forwarding makes hosts ignore router advertisements: only where pods need it.
        file(PATHS.sysctl, "0644", "host/sysctl.conf.j2", None, ipv6=cluster.pod_cidr.version == 6),
        file(PATHS.modules_load, "0644", "host/modules.conf.j2", None, modules=kernel_modules(cluster)),
    ]
    return tuple(files)
