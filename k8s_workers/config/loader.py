"""The stack's configuration: typed models, and one function that finds every error.

`load_config(raw)` takes the project's config values (keys without the
`k8s-workers:` namespace) and returns a `StackConfig`, or raises `ConfigError`
holding every problem found, each named by its key path, e.g.
`nodes[1].address: '10.0.0.300' is not an IP address`.

Field-level checks are pydantic validators; checks that relate several values
(duplicates, overlaps, what the chosen modes require) run afterwards on whatever
parsed, so one bad value never hides another.
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import ValidationError

from k8s_workers.config.examples import is_example_ca, is_example_host_key
from k8s_workers.config.fleet import FLEET_KEYS, from_cluster_stack, read_fleet
from k8s_workers.config.inventory import read_inventory, relabel
from k8s_workers.config.kubelet_schema import check_overrides
from k8s_workers.config.models import (
    IPVS_DEPRECATED_MINOR,
    ArtifactSpec,
    Binaries,
    Cluster,
    Cni,
    ContainerRuntime,
    KubeProxy,
    KubeProxyCertificate,
    Node,
    NodeSettings,
    Ssh,
    StackConfig,
    Taint,
    _Model,
)
from k8s_workers.config.types import SecretPlaceholder, describe, parse_cidr, parse_ip

__all__ = ["Cluster", "ConfigError", "ConfigIssue", "Node", "SecretPlaceholder", "StackConfig", "load_config"]

TOP_LEVEL_KEYS = ("cluster", "defaults", "nodes", "inventory", "caKey", "sshPrivateKey", *FLEET_KEYS)

# --------------------------------------------------------------------------- errors


class ConfigIssue(NamedTuple):
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class ConfigError(Exception):
    def __init__(self, issues: Iterable[ConfigIssue]):
        self.issues = sorted(set(issues), key=lambda i: (_path_sort_key(i.path), i.message))
        lines = "\n".join(f"  - {issue}" for issue in self.issues)
        super().__init__(f"invalid k8s-workers configuration ({len(self.issues)} errors):\n{lines}")


def _path_sort_key(path: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in re.split(r"[\[\].]+", path) if p]


def format_path(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        if part == "[key]":  # pydantic's marker for "the key itself is invalid"
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", part):
            out += f".{part}" if out else part
        else:
            out += f'["{part}"]'
    return out


# ------------------------------------------------------------------ loading


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; anything else (lists included) is replaced."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


_ALL_KEYS = sorted(
    {
        field.alias or name
        for model in (
            ArtifactSpec,
            Binaries,
            ContainerRuntime,
            Cni,
            KubeProxy,
            KubeProxyCertificate,
            Cluster,
            Ssh,
            Taint,
            Node,
        )
        for name, field in model.model_fields.items()
    }
    | set(TOP_LEVEL_KEYS)
)


def _pydantic_issues(error: ValidationError, prefix: tuple[str | int, ...]) -> list[ConfigIssue]:
    issues = []
    for err in error.errors():
        loc = prefix + tuple(err["loc"])
        value = err.get("input")
        kind = err["type"]
        if kind == "value_error":
            message = str(err["ctx"]["error"])
        elif kind == "missing":
            message = "is required"
        elif kind == "extra_forbidden":
            key = str(loc[-1])
            near = difflib.get_close_matches(key, _ALL_KEYS, n=1)
            message = "unknown key" + (f" (did you mean {near[0]!r}?)" if near else "")
        elif kind in ("greater_than_equal", "less_than_equal"):
            bound = err["ctx"].get("ge", err["ctx"].get("le"))
            message = f"{describe(value)} must be {'at least' if 'ge' in err['ctx'] else 'at most'} {bound}"
        elif kind in ("literal_error", "enum"):
            message = f"{describe(value)} is not one of {err['ctx']['expected']}"
        else:
            message = f"{describe(value)}: {err['msg']}" if not isinstance(value, dict | list) else err["msg"]
        issues.append(ConfigIssue(format_path(loc), message))
    return issues


def _validate(model: type[_Model], data: Any, prefix: tuple[str | int, ...], issues: list[ConfigIssue]):
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        issues.extend(_pydantic_issues(exc, prefix))
        return None


def load_config(
    raw: Mapping[str, Any],
    *,
    require_secrets: bool = True,
    base_dir: Path | None = None,
    cluster_stack: Mapping[str, Any] | None = None,
) -> StackConfig:
    """Validate everything; raise ConfigError with all problems, or return the config.

    `require_secrets=False` is for render and tests: the CA key and SSH key may then be
    missing or SecretPlaceholders. `base_dir`: where `inventory` paths start (the project;
    default the working directory, as under Pulumi). `cluster_stack`: for a pool stack, the
    `cluster` settings its cluster stack exported (None: that stack exports none).
    """
    fleet, fleet_problems = read_fleet(raw)
    issues: list[ConfigIssue] = [ConfigIssue(path, message) for path, message in fleet_problems]
    for key in raw:
        if key not in TOP_LEVEL_KEYS:
            near = difflib.get_close_matches(key, TOP_LEVEL_KEYS, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            issues.append(ConfigIssue(key, f"unknown key{hint}; expected one of {list(TOP_LEVEL_KEYS)}"))

    cluster_raw = raw.get("cluster") if fleet.role != "pool" else cluster_stack
    if cluster_raw is None and fleet.role == "pool":
        if fleet.cluster_stack is not None:
            issues.append(
                ConfigIssue(
                    "clusterStack", f"{fleet.cluster_stack!r} exports no cluster settings: `pulumi up` it first"
                )
            )
        cluster = None
    elif cluster_raw is None:
        issues.append(ConfigIssue("cluster", "is required"))
        cluster = None
    else:
        cluster = _validate(Cluster, cluster_raw, ("cluster",), issues)

    defaults_raw = raw.get("defaults") or {}
    defaults = _validate(NodeSettings, defaults_raw, ("defaults",), issues)
    if not isinstance(defaults_raw, Mapping):
        defaults_raw = {}

    nodes_raw = raw.get("nodes") or []
    nodes: list[tuple[int, Node]] = []
    if not isinstance(nodes_raw, list):
        issues.append(ConfigIssue("nodes", "must be a list of nodes"))
        nodes_raw = []
    origins: list[str] = []
    if raw.get("inventory") is not None:
        inventory = read_inventory(raw["inventory"], nodes_raw, base_dir or Path.cwd())
        issues += [ConfigIssue(path, message) for path, message in inventory.problems]
        nodes_raw, origins = inventory.nodes, inventory.origins
    for index, node_raw in enumerate(nodes_raw):
        if not isinstance(node_raw, Mapping):
            issues.append(ConfigIssue(f"nodes[{index}]", "must be a mapping with name and address"))
            continue
        # A bad default is reported once, under defaults, not again under every node.
        merged = deep_merge(defaults_raw if defaults is not None else {}, node_raw)
        node = _validate(Node, merged, ("nodes", index), issues)
        if node is not None:
            nodes.append((index, node))

    ca_key = raw.get("caKey") if fleet.role != "pool" else None
    ssh_key = raw.get("sshPrivateKey")
    issues += _network_issues(cluster_raw if isinstance(cluster_raw, Mapping) else {})
    ca_key_pem = _ca_key_pem(cluster, ca_key) if cluster is not None and fleet.holds_cluster else None
    if cluster is not None:  # a pool signs nothing: its cluster stack made kube-proxy's certificate
        issues += _cluster_issues(cluster, ca_key, ca_key_pem, require_secrets and fleet.holds_cluster)
        issues += _artifact_issues(cluster, [n for _, n in nodes])
    issues += _duplicate_issues(nodes_raw)
    issues += _node_issues(cluster, nodes)
    kubelet_warnings: list[str] = []
    if cluster is not None:
        issues += _kubelet_issues(cluster, defaults_raw, nodes_raw, kubelet_warnings)
    if isinstance(ssh_key, str) and not isinstance(ssh_key, SecretPlaceholder) and "PRIVATE KEY" not in ssh_key:
        issues.append(ConfigIssue("sshPrivateKey", "is not a PEM/OpenSSH private key"))

    if issues:
        if origins:  # nodes from inventory files: each error names its file and entry
            issues = [ConfigIssue(relabel(i.path, origins), relabel(i.message, origins)) for i in issues]
        if fleet.cluster_stack is not None:  # a pool's cluster settings are fixed in its cluster stack
            issues = [_in_cluster_stack(i, fleet.cluster_stack) for i in issues]
        raise ConfigError(issues)
    assert cluster is not None
    warnings = _warnings(cluster, nodes) + tuple(kubelet_warnings)
    return StackConfig(cluster, tuple(n for _, n in nodes), ca_key_pem, ssh_key, warnings, fleet)


def _in_cluster_stack(issue: ConfigIssue, reference: str) -> ConfigIssue:
    if issue.path.startswith("cluster."):  # a setting read from the cluster stack
        return ConfigIssue(from_cluster_stack(issue.path, reference), issue.message)
    return issue


def _kubelet_issues(
    cluster: Cluster, defaults_raw: Mapping[str, Any], nodes_raw: list[Any], warnings: list[str]
) -> list[ConfigIssue]:
    """`kubelet:` overrides against the KubeletConfiguration of the target minor (types, fields
    that minor lacks), where they are written: under defaults, or under the node."""
    issues = []
    places = [("defaults", defaults_raw.get("kubelet"))]
    places += [(f"nodes[{i}]", n.get("kubelet")) for i, n in enumerate(nodes_raw) if isinstance(n, Mapping)]
    for prefix, overrides in places:
        if not isinstance(overrides, Mapping) or not overrides:
            continue
        problems, deprecated = check_overrides(overrides, cluster.minor)
        issues += [ConfigIssue(f"{prefix}.kubelet.{sub}", why) for sub, why in problems]
        warnings += [
            f"{prefix}.kubelet.{key}: deprecated in the KubeletConfiguration of Kubernetes 1.{cluster.minor}"
            for key in deprecated
        ]
    return issues


def _warnings(cluster: Cluster, nodes: list[tuple[int, Node]]) -> tuple[str, ...]:
    found = []
    if cluster.ca_cert is not None and is_example_ca(cluster.ca_cert):
        found.append(
            "cluster.caCert: the dev stack's example CA; no apiserver presents it, so `up` cannot reach the "
            "cluster. Put your cluster's CA here: `kubectl config view --raw --minify -o "
            "jsonpath='{.clusters[0].cluster.certificate-authority-data}' | base64 -d`"
        )
    for index, node in nodes:
        if is_example_host_key(node.ssh.host_key):
            found.append(
                f"nodes[{index}].ssh.hostKey: the dev stack's example key; the install will refuse the real "
                f"host (its key differs). Pin the host's own: `ssh-keyscan -t ed25519 {node.ssh_host}`"
            )
    if cluster.kube_proxy.mode == "ipvs" and cluster.minor >= IPVS_DEPRECATED_MINOR:
        found.append(
            f"cluster.kubeProxy.mode: ipvs is deprecated since Kubernetes 1.{IPVS_DEPRECATED_MINOR}; "
            "prefer nftables (or iptables)"
        )
    on_v1 = [node.name for _, node in nodes if node.allow_cgroup_v1]
    if on_v1:
        shown = ", ".join(on_v1[:5]) + (f" and {len(on_v1) - 5} more" if len(on_v1) > 5 else "")
        found.append(
            f"allowCgroupV1 is set for {shown}: cgroup v1 support is in maintenance and being removed "
            "upstream; move these hosts to cgroup v2"
        )
    return tuple(found)


def _ca_key_pem(cluster: Cluster, ca_key: str | None) -> str | None:
    """The CA key from config, else from cluster.caKeyFile (read once, here)."""
    if ca_key is not None:
        return ca_key
    if cluster.ca_key_file is not None:
        return Path(cluster.ca_key_file).read_text()
    return None


def _parsed(parse: Any, value: Any) -> Any:
    """The parsed value, or None when it is invalid (its own error is reported elsewhere)."""
    try:
        return parse(value)
    except ValueError:
        return None


def _network_issues(cluster_raw: Mapping[str, Any]) -> list[ConfigIssue]:
    """Relations between the cluster's networks, checked even when other fields are bad."""
    issues = []
    services = _parsed(parse_cidr, cluster_raw.get("serviceCidr"))
    pods = _parsed(parse_cidr, cluster_raw.get("podCidr"))
    dns = _parsed(parse_ip, cluster_raw.get("clusterDns"))
    if services is not None and pods is not None and services.overlaps(pods):
        issues.append(ConfigIssue("cluster.podCidr", f"'{pods}' overlaps cluster.serviceCidr '{services}'"))
    if services is not None and dns is not None:
        if dns not in services:
            issues.append(ConfigIssue("cluster.clusterDns", f"'{dns}' is outside cluster.serviceCidr '{services}'"))
        elif dns == services.network_address:
            issues.append(ConfigIssue("cluster.clusterDns", f"'{dns}' is the service network's own address"))
    return issues


def _duplicate_issues(nodes_raw: list[Any]) -> list[ConfigIssue]:
    """Duplicate names, addresses and SSH endpoints, checked on every node entry."""
    issues = []
    seen: dict[str, dict[Any, int]] = {"name": {}, "address": {}, "ssh.host": {}}
    for index, node in enumerate(nodes_raw):
        if not isinstance(node, Mapping):
            continue
        ssh = node.get("ssh") if isinstance(node.get("ssh"), Mapping) else {}
        endpoint = (ssh.get("host") or node.get("address"), ssh.get("port", 22))
        for kind, value in (("name", node.get("name")), ("address", node.get("address")), ("ssh.host", endpoint)):
            if value is None or not isinstance(value, str | tuple):
                continue
            first = seen[kind].setdefault(value, index)
            if first != index and not (kind == "ssh.host" and endpoint[0] == node.get("address")):
                shown = f"{value[0]}:{value[1]}" if isinstance(value, tuple) else value
                issues.append(ConfigIssue(f"nodes[{index}].{kind}", f"'{shown}' duplicates nodes[{first}]"))
    return issues


def _cluster_issues(cluster: Cluster, ca_key: Any, key_pem: str | None, require_secrets: bool) -> list[ConfigIssue]:
    issues = []
    if (cluster.ca_cert is None) == (cluster.ca_cert_file is None):
        issues.append(ConfigIssue("cluster.caCert", "set exactly one of caCert and caCertFile"))
    if ca_key is not None and cluster.ca_key_file is not None:
        issues.append(ConfigIssue("caKey", "set either caKey (a secret) or cluster.caKeyFile, not both"))
    key_path = "caKey" if ca_key is not None or cluster.ca_key_file is None else "cluster.caKeyFile"
    # No key: the cluster issues kube-proxy's certificate (components/kube_proxy_certificate.py).
    if key_pem is not None and not isinstance(key_pem, SecretPlaceholder):
        issues += _ca_key_matches(cluster, key_pem, key_path)
    return issues


def _ca_key_matches(cluster: Cluster, key_pem: str, key_path: str) -> list[ConfigIssue]:
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError):
        return [ConfigIssue(key_path, "is not an unencrypted PEM private key")]
    try:
        cert = x509.load_pem_x509_certificate(cluster.ca_cert_pem.encode())
    except (ValueError, AssertionError):
        return []  # the certificate's own error is reported already
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    if key.public_key().public_bytes(enc, fmt) != cert.public_key().public_bytes(enc, fmt):
        return [ConfigIssue(key_path, "does not belong to the cluster CA certificate")]
    return []


def required_artifacts(cluster: Cluster) -> tuple[str, ...]:
    names = ["kubelet", "kube-proxy"]
    if cluster.container_runtime.type == "containerd":
        names += ["containerd", "runc"]
    if cluster.cni.mode == "bridge":
        names.append("cni-plugins")
    return tuple(names)


def _artifact_issues(cluster: Cluster, nodes: list[Node]) -> list[ConfigIssue]:
    issues = []
    version = cluster.containerd_version
    runtime = cluster.container_runtime
    if runtime.type == "containerd" and version is not None and version[0] != runtime.containerd_major:
        issues.append(
            ConfigIssue(
                "cluster.containerRuntime.containerdMajor",
                f"is {runtime.containerd_major} but the containerd artifact is version "
                f"{version[0]}.{version[1]} (its config format differs)",
            )
        )
    if cluster.binaries.source != "download":
        return issues
    arches = sorted({n.arch for n in nodes})
    base = "cluster.binaries.artifacts"
    for name in required_artifacts(cluster):
        spec = cluster.binaries.artifacts.get(name)  # type: ignore[call-overload]
        if spec is None:
            issues.append(ConfigIssue(f'{base}["{name}"]', "is required when binaries.source is download"))
            continue
        if name in ("containerd", "runc", "cni-plugins") and spec.version is None:
            issues.append(ConfigIssue(f'{base}["{name}"].version', "is required for this artifact"))
        for arch in arches:
            if arch not in spec.sha256:
                users = ", ".join(n.name for n in nodes if n.arch == arch)
                issues.append(ConfigIssue(f'{base}["{name}"].sha256.{arch}', f"is required: nodes {users} are {arch}"))
    return issues


def _node_issues(cluster: Cluster | None, nodes: list[tuple[int, Node]]) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    for index, node in nodes:
        if node.ssh.host_key is None and not node.ssh.insecure_ignore_host_key:
            issues.append(
                ConfigIssue(
                    f"nodes[{index}].ssh.hostKey",
                    f"is required: without it whoever answers on {node.ssh_host}:{node.ssh.port} receives the "
                    f"node's bootstrap token and kube-proxy key. Pin it: `ssh-keyscan -t ed25519 -p "
                    f"{node.ssh.port} {node.ssh_host}` (the key after the address), or set "
                    "ssh.insecureIgnoreHostKey: true to accept that risk",
                )
            )
    if cluster is None:
        return issues
    with_cidr = [(i, n) for i, n in nodes if n.pod_cidr is not None]
    for index, node in nodes:
        if node.pod_cidr is None:
            if cluster.cni.mode == "bridge":
                issues.append(ConfigIssue(f"nodes[{index}].podCidr", "is required when cluster.cni.mode is bridge"))
            continue
        if node.pod_cidr.version != cluster.pod_cidr.version or not node.pod_cidr.subnet_of(cluster.pod_cidr):  # type: ignore[arg-type]
            issues.append(
                ConfigIssue(
                    f"nodes[{index}].podCidr", f"'{node.pod_cidr}' is not inside cluster.podCidr '{cluster.pod_cidr}'"
                )
            )
    for a, (i, node_a) in enumerate(with_cidr):
        for j, node_b in with_cidr[a + 1 :]:
            if node_a.pod_cidr.overlaps(node_b.pod_cidr):  # type: ignore[union-attr]
                issues.append(ConfigIssue(f"nodes[{j}].podCidr", f"'{node_b.pod_cidr}' overlaps nodes[{i}].podCidr"))
    return issues
