"""The files a node receives, checked with the tools that will read them."""

from __future__ import annotations

import json
import shutil
import subprocess
import tomllib
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from k8s_workers.config.loader import StackConfig, load_config
from k8s_workers.render.cluster_objects import bootstrap_token_secret, cluster_role_bindings
from k8s_workers.render.host_paths import PATHS
from k8s_workers.render.node_files import IPVS_MODULES, PLACEHOLDER_SECRETS, node_files
from tests.conftest import base_config

# Flags and settings of the kubelet 1.10-1.12 era that current kubelets reject or ignore.
REMOVED = (
    "--network-plugin", "--cni-bin-dir", "--cni-conf-dir", "--allow-privileged",
    "--experimental-bootstrap-kubeconfig", "--container-runtime=", "--container-runtime-endpoint",
    "--pod-infra-container-image", "RotateKubeletClientCertificate", "RotateKubeletServerCertificate",
    "selfnodeserver", "AlwaysAllow", "dockershim", "cgroupfs",
)  # fmt: skip


def _config(test_ca, **cluster) -> StackConfig:
    return load_config(base_config(test_ca, **cluster))


def _files(config: StackConfig, index: int = 0) -> dict[str, str]:
    return {f.path: f.content for f in node_files(config.cluster, config.nodes[index], PLACEHOLDER_SECRETS)}


def test_kubelet_config_is_secure(test_ca):
    doc = yaml.safe_load(_files(_config(test_ca))[PATHS.kubelet_config])
    assert doc["apiVersion"] == "kubelet.config.k8s.io/v1beta1" and doc["kind"] == "KubeletConfiguration"
    assert doc["authentication"]["anonymous"]["enabled"] is False
    assert doc["authentication"]["webhook"]["enabled"] is True
    assert doc["authentication"]["x509"]["clientCAFile"] == PATHS.ca_cert
    assert doc["authorization"]["mode"] == "Webhook"
    assert doc["readOnlyPort"] == 0
    assert doc["rotateCertificates"] is True and doc["serverTLSBootstrap"] is True
    assert doc["tlsMinVersion"] == "VersionTLS12"
    assert all("GCM" in c or "CHACHA20" in c for c in doc["tlsCipherSuites"])
    assert doc["protectKernelDefaults"] is True and doc["makeIPTablesUtilChains"] is True
    assert doc["streamingConnectionIdleTimeout"] != "0s"
    assert doc["seccompDefault"] is True
    assert doc["cgroupDriver"] == "systemd"
    assert doc["containerRuntimeEndpoint"] == "unix:///run/containerd/containerd.sock"
    assert doc["clusterDNS"] == ["10.96.0.10"] and doc["clusterDomain"] == "cluster.local"
    assert set(doc["evictionHard"]) >= {
        "memory.available",
        "nodefs.available",
        "nodefs.inodesFree",
        "imagefs.available",
    }
    assert doc["systemReserved"] and doc["kubeReserved"]
    assert doc["failSwapOn"] is True
    assert "featureGates" not in doc


def test_kubelet_overrides_deep_merge(test_ca):
    config = _config(test_ca)
    second = yaml.safe_load(_files(config, 1)[PATHS.kubelet_config])
    assert second["maxPods"] == 50  # nodes[1].maxPods
    assert second["authentication"]["anonymous"]["enabled"] is False  # untouched defaults stay
    raw = base_config(test_ca)
    raw["defaults"]["kubelet"] = {"authentication": {"webhook": {"cacheTTL": "30s"}}}
    doc = yaml.safe_load(_files(load_config(raw))[PATHS.kubelet_config])
    assert doc["authentication"]["webhook"] == {"enabled": True, "cacheTTL": "30s"}
    assert doc["authentication"]["x509"]["clientCAFile"] == PATHS.ca_cert


def test_eviction_and_reserved_maps_merge_over_the_defaults(test_ca):
    """A node that sets one eviction signal keeps the other three (a missing one counts as 0)."""
    raw = base_config(test_ca)
    raw["nodes"][0]["evictionHard"] = {"memory.available": "500Mi"}
    raw["defaults"]["systemReserved"] = {"cpu": "250m"}
    doc = yaml.safe_load(_files(load_config(raw))[PATHS.kubelet_config])
    assert doc["evictionHard"] == {
        "memory.available": "500Mi",
        "nodefs.available": "10%",
        "nodefs.inodesFree": "5%",
        "imagefs.available": "15%",
    }
    assert doc["systemReserved"] == {"cpu": "250m", "memory": "256Mi", "ephemeral-storage": "1Gi"}


def test_no_flag_or_setting_current_kubelets_reject(test_ca):
    for mode in ("iptables", "nftables", "ipvs"):
        config = _config(test_ca, kubeProxy={"mode": mode})
        for index in (0, 1):
            for path, content in _files(config, index).items():
                for word in REMOVED:
                    assert word not in content, f"{word} in {path}"


def test_kubelet_flags(test_ca):
    flags = _files(_config(test_ca), 1)[PATHS.kubelet_flags]
    assert "--node-ip=192.0.2.12" in flags
    # Labels and taints go on the Node through the API; the kubelet registers with the startup taint.
    assert "--node-labels" not in flags and "--register-with-taints" not in flags
    startup = [{"key": "k8s-workers/uninitialized", "effect": "NoSchedule"}]
    for index in (0, 1):
        assert yaml.safe_load(_files(_config(test_ca), index)[PATHS.kubelet_config])["registerWithTaints"] == startup
    assert f"--cert-dir={PATHS.kubelet_pki}" in flags
    assert "--hostname-override" not in flags
    dropin = _files(_config(test_ca))[PATHS.kubelet_dropin]
    assert f"--bootstrap-kubeconfig={PATHS.bootstrap_kubeconfig}" in dropin
    assert f"--config={PATHS.kubelet_config}" in dropin
    assert f"EnvironmentFile=-{PATHS.kubelet_flags}" in dropin
    assert f"EnvironmentFile=-{PATHS.kubelet_extra_args}" in dropin


def test_hostname_override_reaches_kube_proxy_too(test_ca):
    raw = base_config(test_ca)
    raw["nodes"][0]["hostnameOverride"] = True
    files = _files(load_config(raw))
    assert "--hostname-override=worker-1" in files[PATHS.kubelet_flags]
    assert yaml.safe_load(files[PATHS.kube_proxy_config])["hostnameOverride"] == "worker-1"


def _verify_units(files: dict[str, str], root: Path, bin_dir: str = "/usr/local/bin") -> subprocess.CompletedProcess:
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    for path, content in files.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    for binary in ("kubelet", "kube-proxy", "containerd"):  # "missing binaries aside"
        stub = root / bin_dir.lstrip("/") / binary
        stub.parent.mkdir(parents=True, exist_ok=True)
        stub.write_text("#!/bin/sh\n")
        stub.chmod(0o755)
    units = [p for p in files if p.endswith(".service")]
    return subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", *units],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize("runtime", ["containerd", "external"])
def test_units_pass_systemd_analyze_verify(test_ca, tmp_path, runtime):
    config = _config(
        test_ca,
        containerRuntime={"type": runtime, "endpoint": "unix:///run/cri-dockerd.sock"}
        if runtime == "external"
        else {"type": runtime},
    )
    files = _files(config)
    units = [p for p in files if p.endswith(".service")]
    assert len(units) == (4 if runtime == "containerd" else 3)  # + the bridge mode's pod routes
    result = _verify_units(files, tmp_path)
    assert result.returncode == 0, result.stderr
    ours = [
        line for line in result.stderr.splitlines() if "k8s-workers" in line or "kube" in line or "containerd" in line
    ]
    assert ours == [], result.stderr


def test_containerd_config(test_ca):
    for major, version, artifact in ((2, 3, "2.1.4"), (1, 2, "1.7.28")):
        runtime = {"containerdMajor": major, "sandboxImage": "registry.k8s.io/pause:3.10"}
        raw = base_config(test_ca, containerRuntime=runtime)
        raw["cluster"]["binaries"]["artifacts"]["containerd"]["version"] = artifact
        config = load_config(raw)
        doc = tomllib.loads(_files(config)[PATHS.containerd_config])
        assert doc["version"] == version
        text = json.dumps(doc)
        assert '"SystemdCgroup": true' in text
        assert "registry.k8s.io/pause:3.10" in text
    raw = base_config(test_ca)
    raw["cluster"]["binaries"]["artifacts"]["containerd"]["version"] = "2.0.6"
    cni = tomllib.loads(_files(load_config(raw))[PATHS.containerd_config])["plugins"]["io.containerd.cri.v1.runtime"][
        "cni"
    ]
    assert cni["bin_dir"] == "/opt/cni/bin" and "bin_dirs" not in cni  # 2.0 reads bin_dir, 2.1+ bin_dirs


def test_quoted_names_survive_yaml(test_ca, tmp_path):
    raw = base_config(test_ca, name="yes")
    raw["nodes"][0]["name"] = "123"
    raw["nodes"][0]["hostnameOverride"] = True
    files = _files(load_config(raw))
    kubeconfig = yaml.safe_load(files[PATHS.bootstrap_kubeconfig])
    assert kubeconfig["clusters"][0]["name"] == "yes"
    assert yaml.safe_load(files[PATHS.kube_proxy_config])["hostnameOverride"] == "123"
    target = tmp_path / "kubeconfig"
    target.write_text(files[PATHS.kube_proxy_kubeconfig])
    result = subprocess.run(
        ["kubectl", "config", "view", "--kubeconfig", str(target)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_ipv6_forwarding_only_for_ipv6_pods(test_ca):
    assert "net.ipv6.conf.all.forwarding" not in _files(_config(test_ca))[PATHS.sysctl]


def test_external_runtime_has_no_containerd_files(test_ca):
    config = _config(test_ca, containerRuntime={"type": "external", "endpoint": "unix:///run/cri-dockerd.sock"})
    files = _files(config)
    assert PATHS.containerd_config not in files and PATHS.containerd_unit not in files
    assert yaml.safe_load(files[PATHS.kubelet_config])["containerRuntimeEndpoint"] == "unix:///run/cri-dockerd.sock"
    assert "containerd" not in files[PATHS.kubelet_unit]


def test_bridge_cni_uses_the_node_pod_cidr(test_ca):
    files = _files(_config(test_ca), 1)
    conflist = json.loads(files[PATHS.bridge_conflist])
    assert conflist["plugins"][0]["type"] == "bridge"
    assert conflist["plugins"][0]["ipam"]["ranges"] == [[{"subnet": "10.244.2.0/24"}]]


@pytest.mark.parametrize("mode", ["calico", "none"])
def test_non_bridge_modes_write_no_cni_config(test_ca, mode):
    raw = base_config(test_ca, cni={"mode": mode})
    for node in raw["nodes"]:
        node.pop("podCidr")
    raw["cluster"]["binaries"]["artifacts"].pop("cni-plugins")
    assert PATHS.bridge_conflist not in _files(load_config(raw))


def test_kube_proxy_config_and_modules(test_ca):
    for mode in ("iptables", "nftables", "ipvs"):
        files = _files(_config(test_ca, kubeProxy={"mode": mode}))
        doc = yaml.safe_load(files[PATHS.kube_proxy_config])
        assert doc["kind"] == "KubeProxyConfiguration" and doc["mode"] == mode
        assert doc["metricsBindAddress"].startswith("127.0.0.1:")
        assert doc["clientConnection"]["kubeconfig"] == PATHS.kube_proxy_kubeconfig
        assert doc["clusterCIDR"] == "10.244.0.0/16"
        modules = files[PATHS.modules_load]
        assert "br_netfilter" in modules and "overlay" in modules
        assert all((m in modules) == (mode == "ipvs") for m in IPVS_MODULES)


def test_sysctls_match_protect_kernel_defaults(test_ca):
    sysctl = _files(_config(test_ca))[PATHS.sysctl]
    for line in ("net.ipv4.ip_forward = 1", "net.bridge.bridge-nf-call-iptables = 1", "vm.overcommit_memory = 1",
                 "kernel.panic = 10", "kernel.panic_on_oops = 1"):  # fmt: skip
        assert line in sysctl


def test_file_modes_follow_cis(test_ca):
    config = _config(test_ca)
    modes = {f.path: f.mode for f in node_files(config.cluster, config.nodes[0], PLACEHOLDER_SECRETS)}
    for path in (PATHS.bootstrap_kubeconfig, PATHS.kube_proxy_kubeconfig, PATHS.kubelet_config,
                 PATHS.kubelet_unit, PATHS.kubelet_dropin, PATHS.kube_proxy_unit, PATHS.containerd_unit):  # fmt: skip
        assert modes[path] == "0600", path
    assert modes[PATHS.ca_cert] == "0644"


@pytest.mark.parametrize("version", ["1.34.0", "1.35.0", "1.36.0", "1.37.0"])
def test_cluster_objects_validate_against_the_openapi_schema(test_ca, version):
    config = _config(test_ca)
    manifests = cluster_role_bindings(config.cluster)
    manifests += [
        bootstrap_token_secret(n.name, "abc123", "0123456789abcdef", "2026-01-02T00:00:00Z") for n in config.nodes
    ]
    for manifest in manifests:
        kubernetes_validate.validate(manifest, version, strict=True)


def test_schema_validation_catches_a_broken_object(test_ca):
    manifest = cluster_role_bindings(_config(test_ca).cluster)[0]
    manifest["roleRef"]["nmae"] = manifest["roleRef"].pop("name")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(manifest, "1.37.0", strict=True)
