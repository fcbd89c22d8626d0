"""Where things live on a worker node: kubeadm's paths, so operators find them."""

from dataclasses import dataclass


@dataclass(frozen=True)
class HostPaths:
    ca_cert: str = "/etc/kubernetes/pki/ca.crt"
    bootstrap_kubeconfig: str = "/etc/kubernetes/bootstrap-kubelet.conf"
    kubelet_kubeconfig: str = "/etc/kubernetes/kubelet.conf"  # written by the kubelet itself
    kubelet_config: str = "/var/lib/kubelet/config.yaml"
    kubelet_flags: str = "/var/lib/kubelet/kubelet-flags.env"
    kubelet_extra_args: str = "/etc/default/kubelet"
    kubelet_pki: str = "/var/lib/kubelet/pki"
    kubelet_unit: str = "/usr/lib/systemd/system/kubelet.service"
    kubelet_dropin: str = "/usr/lib/systemd/system/kubelet.service.d/10-k8s-workers.conf"
    kube_proxy_kubeconfig: str = "/var/lib/kube-proxy/kubeconfig.conf"
    kube_proxy_config: str = "/var/lib/kube-proxy/config.conf"
    kube_proxy_unit: str = "/usr/lib/systemd/system/kube-proxy.service"
    containerd_config: str = "/etc/containerd/config.toml"
    containerd_unit: str = "/usr/lib/systemd/system/containerd.service"
    crictl_config: str = "/etc/crictl.yaml"
    cni_conf_dir: str = "/etc/cni/net.d"
    cni_bin_dir: str = "/opt/cni/bin"
    bridge_conflist: str = "/etc/cni/net.d/10-k8s-workers-bridge.conflist"
    pod_routes_unit: str = "/usr/lib/systemd/system/k8s-workers-pod-routes.service"
    sysctl: str = "/etc/sysctl.d/90-k8s-workers.conf"
    modules_load: str = "/etc/modules-load.d/k8s-workers.conf"
    # Our own bookkeeping: restarts still owed, installed artifacts.
    state_dir: str = "/var/lib/k8s-workers"
    # What removes the node, placed by its install: the engine keeps only a short command to run it.
    removal_script: str = "/var/lib/k8s-workers/remove.sh"


PATHS = HostPaths()
