"""The stack config's shape: pydantic models for the cluster, node defaults and nodes."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic.alias_generators import to_camel

from k8s_workers.config import k8s_names
from k8s_workers.config.fleet import Fleet
from k8s_workers.config.kubelet_schema import all_field_names, flag_fields
from k8s_workers.config.types import (
    AbsolutePath,
    Arch,
    ArtifactName,
    Cidr,
    EvictionSignal,
    HostKey,
    IPAddress,
    PemCertificate,
    Quantity,
    ReservedResource,
    Sha256,
    StrictBool,
    Threshold,
    invalid,
    kubernetes_rule,
    matching,
    pem_certificate,
    readable_file,
)

# Minors upstream supports (1.35-1.37), and 1.34, whose support ended in October 2026.
SUPPORTED_MINORS = (34, 35, 36, 37)
IPVS_DEPRECATED_MINOR = 35  # kube-proxy warns from 1.35 on
CGROUP_V1_REFUSED_MINOR = 35  # the kubelet's failCgroupV1 defaults to true from 1.35 on


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True)


# ------------------------------------------------------------------ cluster


class ArtifactSpec(_Model):
    """Where one binary (or tarball) comes from; `{version}` and `{arch}` are filled in."""

    url: str
    sha256: dict[Arch, Sha256]
    version: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+/\S*$", value):
            raise invalid(value, "is not an http(s) URL")
        unknown = set(re.findall(r"\{([^}]*)\}", value)) - {"version", "arch"}
        if unknown:
            raise invalid(value, f"has unknown placeholders {sorted(unknown)} (allowed: {{version}}, {{arch}})")
        return value


class Binaries(_Model):
    source: Literal["download", "preinstalled"] = "download"
    # Where the binaries are (preinstalled) or go (download); the units run them from here.
    bin_dir: AbsolutePath = "/usr/local/bin"
    artifacts: dict[ArtifactName, ArtifactSpec] = {}


class ContainerRuntime(_Model):
    type: Literal["containerd", "external"] = "containerd"
    # CRI socket the kubelet talks to; for docker users, cri-dockerd's socket.
    endpoint: Annotated[str, matching(r"unix:///\S+", "is not a CRI endpoint (expected unix:///path/to.sock)")] = (
        "unix:///run/containerd/containerd.sock"
    )
    containerd_major: Literal[1, 2] = 2
    sandbox_image: Annotated[
        str,
        matching(
            r"[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9._-]+)?(@sha256:[0-9a-f]{64})?",
            "is not an image reference (e.g. registry.k8s.io/pause:3.10)",
        ),
    ] = "registry.k8s.io/pause:3.10"
    # Merged key by key over the generated config.toml (e.g. restrict_oom_score_adj for nodes in
    # containers), so no setting needs a file patched behind the program's back.
    config: dict[str, Any] = {}

    @field_validator("config")
    @classmethod
    def _config(cls, value: dict[str, Any]) -> dict[str, Any]:
        problems = [f"{key!r} is set by this program" for key in ("version", "imports") if key in value]
        for path, leaf in _leaves(value):
            if path[-1] == "SystemdCgroup" and leaf is not True:
                problems.append(f"{'.'.join(path)} must stay true (the kubelet's cgroupDriver is systemd)")
            if path[-1] in ("sandbox", "sandbox_image"):
                problems.append(f"{'.'.join(path)}: set cluster.containerRuntime.sandboxImage instead")
        if problems:
            raise ValueError("; ".join(problems))
        return value


def _leaves(tree: Mapping[str, Any], path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    found = []
    for key, value in tree.items():
        if isinstance(value, Mapping):
            found += _leaves(value, (*path, key))
        else:
            found.append(((*path, key), value))
    return found


class Cni(_Model):
    mode: Literal["calico", "bridge", "none"] = "calico"
    bridge_name: Annotated[
        str, matching(r"[A-Za-z0-9_.-]{1,15}", "is not a Linux interface name (at most 15 characters)")
    ] = "cni0"
    # bridge mode: each node routes the other nodes' pod CIDRs to their addresses (nodes on one
    # L2 network). Turn off where the network already routes pod CIDRs.
    pod_routes: StrictBool = True


class KubeProxy(_Model):
    mode: Literal["iptables", "nftables", "ipvs"] = "iptables"
    ipvs_scheduler: Literal["rr", "wrr", "sh", "lc"] = "rr"


class KubeProxyCertificate(_Model):
    validity_hours: int = Field(8760, ge=24, le=87600)
    early_renewal_hours: int = Field(720, ge=0)

    @field_validator("early_renewal_hours")
    @classmethod
    def _shorter_than_validity(cls, value: int, info: ValidationInfo) -> int:
        validity = info.data.get("validity_hours")
        if validity is not None and value >= validity:
            raise invalid(value, f"must be less than validityHours ({validity})")
        return value


class Rollout(_Model):
    """How a change that restarts the kubelet or the runtime (or replaces a binary) goes out."""

    # Nodes changed at once: a count, or a percentage of the nodes (rounded down, at least 1).
    max_unavailable: int | str = 1
    drain: StrictBool = True  # cordon and drain each node before such a change (and before removal)
    drain_timeout_seconds: int = Field(300, ge=10, le=7200)
    ignore_daemonsets: StrictBool = True
    delete_emptydir_data: StrictBool = True
    force: StrictBool = False  # evict pods no controller recreates
    allow_downgrade: StrictBool = False

    @field_validator("max_unavailable", mode="before")
    @classmethod
    def _max_unavailable(cls, value: Any) -> int | str:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise invalid(value, 'is a count (1) or a percentage ("25%")')
        if isinstance(value, int):
            if value < 1:
                raise invalid(value, "must be at least 1")
            return value
        if not re.fullmatch(r"([1-9][0-9]?|100)%", value):
            raise invalid(value, 'is a count (1) or a percentage from 1% to 100% ("25%")')
        return value


class ProgramRbac(_Model):
    """The program's own RBAC (rbac/program-rbac.yaml), declared by this stack for these subjects:
    applied by a first `up` as an admin; later runs as the up identity find it unchanged."""

    deployer: str = "group:k8s-workers:deployer"
    previewer: str = "group:k8s-workers:previewer"

    @field_validator("deployer", "previewer")
    @classmethod
    def _subject(cls, value: str) -> str:
        if not re.fullmatch(r"(group|user):\S+", value):
            raise invalid(value, "is `group:<name>` or `user:<name>`")
        return value


class Cluster(_Model):
    name: str
    api_server: str
    ca_cert: PemCertificate | None = None
    ca_cert_file: str | None = None
    ca_key_file: str | None = None
    service_cidr: Cidr
    cluster_dns: IPAddress
    cluster_domain: str = "cluster.local"
    pod_cidr: Cidr
    kubernetes_version: str
    binaries: Binaries = Binaries()
    container_runtime: ContainerRuntime = ContainerRuntime()
    cni: Cni = Cni()
    kube_proxy: KubeProxy = KubeProxy()
    bootstrap_token_ttl_hours: int = Field(24, ge=1, le=168)
    kube_proxy_certificate: KubeProxyCertificate = KubeProxyCertificate()
    # The user the apiserver presents to kubelets (--kubelet-client-certificate CN).
    apiserver_kubelet_client_user: str = "kube-apiserver-kubelet-client"
    # Every RBAC cluster binds system:node-proxier to system:kube-proxy by default; true adds ours.
    manage_kube_proxy_rbac: StrictBool = False
    # approve: the program approves kubelet-serving CSRs that match the inventory (on every `up`);
    # manual: you approve them; self-signed: kubelets serve self-signed certificates (no CSR).
    serving_certificates: Literal["approve", "manual", "self-signed"] = "approve"
    # An install is done when its Node is Ready: how long to wait for that (0: do not wait).
    readiness_timeout_seconds: int = Field(300, ge=0, le=3600)
    rollout: Rollout = Rollout()
    program_rbac: ProgramRbac | None = None  # None: the cluster's admin applies rbac/program-rbac.yaml

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        problem = k8s_names.dns1123_subdomain_error(value)
        if problem:
            raise invalid(value, problem)
        return value

    @field_validator("api_server")
    @classmethod
    def _api_server(cls, value: str) -> str:
        if not re.fullmatch(r"https://[^\s/:]+(:[0-9]{1,5})?/?", value):
            raise invalid(value, "is not an https URL of the API server (https://host:6443)")
        return value.rstrip("/")

    @field_validator("ca_cert_file", "ca_key_file")
    @classmethod
    def _readable(cls, value: str) -> str:
        return readable_file(value)

    @field_validator("ca_cert_file")
    @classmethod
    def _ca_file_parses(cls, value: str) -> str:
        try:
            pem_certificate(Path(value).read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"{value!r}: {exc}") from None
        return value

    @field_validator("cluster_domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        problem = k8s_names.dns1123_subdomain_error(value.rstrip("."))
        if problem:
            raise invalid(value, problem)
        return value.rstrip(".")

    @field_validator("kubernetes_version", mode="before")
    @classmethod
    def _version_is_text(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise invalid(value, f'is a number: YAML reads an unquoted {value} so; quote the full version ("1.37.2")')
        return value

    @field_validator("kubernetes_version")
    @classmethod
    def _version(cls, value: str) -> str:
        match = re.fullmatch(r"v?1\.([0-9]+)\.([0-9]+)", str(value))
        if not match:
            raise invalid(value, "is not a Kubernetes version (e.g. 1.37.2)")
        if int(match.group(1)) not in SUPPORTED_MINORS:
            raise invalid(value, "is not supported (supported: 1.34 to 1.37)")
        return str(value).lstrip("v")

    @property
    def minor(self) -> int:
        return int(self.kubernetes_version.split(".")[1])

    @property
    def ca_cert_pem(self) -> str:
        if self.ca_cert is not None:
            return self.ca_cert
        assert self.ca_cert_file is not None
        return pem_certificate(Path(self.ca_cert_file).read_text())

    @property
    def containerd_version(self) -> tuple[int, int] | None:
        """(major, minor) of the containerd artifact, when its version says."""
        spec = self.binaries.artifacts.get("containerd")
        match = re.match(r"v?([0-9]+)\.([0-9]+)", spec.version or "") if spec else None
        return (int(match.group(1)), int(match.group(2))) if match else None


# ------------------------------------------------------------------ nodes


class Ssh(_Model):
    user: Annotated[str, matching(r"[a-z_][a-z0-9_.-]{0,31}", "is not a POSIX user name")] = "root"
    host: str | None = None  # default: the node's address
    port: int = Field(22, ge=1, le=65535)
    private_key_file: str | None = None
    host_key: HostKey | None = None
    # Without a host key anyone answering on the address gets the node's token and keys.
    insecure_ignore_host_key: StrictBool = False
    dial_error_limit: int = Field(3, ge=1, le=100)
    per_dial_timeout: int = Field(10, ge=1, le=300)

    @field_validator("private_key_file")
    @classmethod
    def _key_file(cls, value: str) -> str:
        return readable_file(value)


class Taint(_Model):
    key: Annotated[str, kubernetes_rule(k8s_names.qualified_name_error, "taint key")]

    @field_validator("key")
    @classmethod
    def _not_owned(cls, value: str) -> str:
        problem = k8s_names.controller_owned_taint_error(value)
        if problem:
            raise ValueError(f"taint key {value!r}: {problem}")
        return value

    value: Annotated[str, kubernetes_rule(k8s_names.label_value_error, "taint value")] = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]


# Flags the kubelet no longer accepts (with the release that removed each), and flags this program sets itself.
_REMOVED_KUBELET_FLAGS = {
    "--network-plugin": "removed in 1.24: CNI belongs to the container runtime",
    "--cni-bin-dir": "removed in 1.24: CNI belongs to the container runtime",
    "--cni-conf-dir": "removed in 1.24: CNI belongs to the container runtime",
    "--allow-privileged": "removed in 1.15: use Pod Security admission",
    "--experimental-bootstrap-kubeconfig": "removed in 1.23: this program sets --bootstrap-kubeconfig",
    "--container-runtime": "removed in 1.27: remote CRI only",
    "--pod-infra-container-image": "removed in 1.35: set cluster.containerRuntime.sandboxImage",
    "--container-runtime-endpoint": "deprecated: set cluster.containerRuntime.endpoint",
}
_OWNED_KUBELET_FLAGS = (
    "--config",
    "--kubeconfig",
    "--bootstrap-kubeconfig",
    "--cert-dir",
    "--node-ip",
    "--node-labels",  # labels and taints are put on the Node through the API: use `labels`, `taints`
    "--register-with-taints",
    "--hostname-override",
)


_RESERVED = {"cpu": "100m", "memory": "256Mi", "ephemeral-storage": "1Gi"}
_EVICTION_HARD = {
    "memory.available": "200Mi",
    "nodefs.available": "10%",
    "nodefs.inodesFree": "5%",
    "imagefs.available": "15%",
}
# KubeletConfiguration fields that are node settings of their own (field -> node key), and the
# kubelet flags that set them: each is set in one place only.
_NODE_KEYS_OF_KUBELET_FIELDS = {
    "maxPods": "maxPods",
    "podPidsLimit": "podPidsLimit",
    "evictionHard": "evictionHard",
    "systemReserved": "systemReserved",
    "kubeReserved": "kubeReserved",
    "resolvConf": "resolvConf",
}
_NODE_KEYS_OF_KUBELET_FLAGS = {
    "--max-pods": "maxPods",
    "--pod-max-pids": "podPidsLimit",
    "--eviction-hard": "evictionHard",
    "--system-reserved": "systemReserved",
    "--kube-reserved": "kubeReserved",
    "--resolv-conf": "resolvConf",
}
# kubelet flags that set a secure default of the KubeletConfiguration: (field path, how to read the value)
_SECURITY_FLAGS: dict[str, tuple[tuple[str, ...], Any]] = {
    "--anonymous-auth": (("authentication", "anonymous", "enabled"), lambda v: v.lower() in ("true", "1", "")),
    "--authorization-mode": (("authorization", "mode"), str),
    "--read-only-port": (("readOnlyPort",), lambda v: int(v) if v.isdigit() else v),
    "--cgroup-driver": (("cgroupDriver",), str),
}


def _as_override(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    override: dict[str, Any] = {path[-1]: value}
    for key in reversed(path[:-1]):
        override = {key: override}
    return override


class NodeSettings(_Model):
    """Everything `defaults` may set and each node may override."""

    arch: Arch = "amd64"
    ssh: Ssh = Ssh()
    labels: dict[str, Any] = {}  # values checked below, with a hint for YAML's unquoted true/1
    taints: list[Taint] = []
    # Deep-merged over the generated KubeletConfiguration.
    kubelet: dict[str, Any] = {}
    kubelet_extra_args: list[str] = []
    # These maps merge key by key over their defaults: setting one signal keeps the other three.
    system_reserved: dict[ReservedResource, Quantity] = dict(_RESERVED)
    kube_reserved: dict[ReservedResource, Quantity] = dict(_RESERVED)
    eviction_hard: dict[EvictionSignal, Threshold] = dict(_EVICTION_HARD)
    max_pods: int = Field(110, ge=1, le=2500)
    pod_pids_limit: int = Field(4096, ge=-1)
    resolv_conf: AbsolutePath = "/etc/resolv.conf"
    # Off by default (CIS 4.2.8): the node name must then equal the host's hostname.
    hostname_override: StrictBool = False
    # cgroup v1 hosts are refused (kubelets from 1.35 on refuse them); true runs the kubelet
    # with failCgroupV1: false while upstream still allows it.
    allow_cgroup_v1: StrictBool = False

    @field_validator("system_reserved", "kube_reserved", "eviction_hard", mode="before")
    @classmethod
    def _merged_over_defaults(cls, value: Any, info: ValidationInfo) -> Any:
        defaults = _EVICTION_HARD if info.field_name == "eviction_hard" else _RESERVED
        return {**defaults, **value} if isinstance(value, Mapping) else value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key, label in value.items():
            problem = k8s_names.qualified_name_error(key) or k8s_names.kubelet_owned_label_error(key)
            if problem:
                raise ValueError(f"label key {key!r}: {problem}")
            if not isinstance(label, str):
                shown = str(label).lower() if isinstance(label, bool) else str(label)
                raise ValueError(f'label {key!r}: value {label!r} is not a string: quote it ({key}: "{shown}")')
            problem = k8s_names.label_value_error(label)
            if problem:
                raise ValueError(f"label {key!r}: value {label!r} {problem}")
        return value

    @field_validator("kubelet")
    @classmethod
    def _kubelet(cls, value: dict[str, Any]) -> dict[str, Any]:
        problems = []
        for key in value:
            if key not in all_field_names():  # of any supported minor; the target's own is checked later
                near = difflib.get_close_matches(key, all_field_names(), n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                problems.append(f"{key!r} is not a KubeletConfiguration field{hint}")
        for key in ("apiVersion", "kind"):
            if key in value:
                problems.append(f"{key!r} is set by this program")
        for key in sorted(set(value) & set(_NODE_KEYS_OF_KUBELET_FIELDS)):
            own = _NODE_KEYS_OF_KUBELET_FIELDS[key]
            problems.append(
                f"{key!r} is also the node setting `{own}`: set it once, as `{own}` (given in both places, "
                f"`kubelet.{key}` would silently win over `{own}`)"
            )
        if "registerWithTaints" in value:
            problems.append(
                "'registerWithTaints' is set by this program (a startup taint); declare taints under "
                "`taints`: they are put on the Node through the API"
            )
        problems += _insecure_kubelet_settings(value)
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @field_validator("kubelet_extra_args")
    @classmethod
    def _extra_args(cls, value: list[str]) -> list[str]:
        for arg in value:
            flag = arg.split("=", 1)[0]
            if not re.fullmatch(r"--[a-z0-9][a-z0-9-]*", flag):
                raise invalid(arg, "is not a --flag or --flag=value")
            if flag in _REMOVED_KUBELET_FLAGS:
                raise invalid(arg, _REMOVED_KUBELET_FLAGS[flag])
            if flag in _OWNED_KUBELET_FLAGS:
                raise invalid(arg, "is set by this program; use the matching setting instead")
            if flag in _NODE_KEYS_OF_KUBELET_FLAGS:
                own = _NODE_KEYS_OF_KUBELET_FLAGS[flag]
                raise invalid(arg, f"sets the node setting `{own}` a second way: set `{own}` instead")
            if any(c in arg for c in "\"'\\$`\n"):
                raise invalid(arg, "must not contain quotes, backslashes, '$', '`' or newlines")
            if flag in _SECURITY_FLAGS:  # flags override the config file: the same check as `kubelet:`
                path, read = _SECURITY_FLAGS[flag]
                problems = _insecure_kubelet_settings(_as_override(path, read(arg.partition("=")[2])))
                if problems:
                    raise invalid(arg, f"would undo a secure default ({'; '.join(problems)})")
            if flag in flag_fields():  # one place for each setting, and the one that is checked
                field = flag_fields()[flag]
                raise invalid(
                    arg,
                    f"sets the KubeletConfiguration field `{field}` (flags override the config file): "
                    f"set it under `kubelet:` as `{field}`, where its type and value are checked",
                )
        return value


def _insecure_kubelet_settings(overrides: Mapping[str, Any]) -> list[str]:
    """Overrides that would undo the secure defaults: refused, with the reason."""
    problems = []
    authn = overrides.get("authentication") or {}
    authz = overrides.get("authorization") or {}
    if isinstance(authn, dict) and (authn.get("anonymous") or {}).get("enabled") is True:
        problems.append("authentication.anonymous.enabled: true lets anyone reach the kubelet API")
    if isinstance(authz, dict) and authz.get("mode") == "AlwaysAllow":
        problems.append("authorization.mode: AlwaysAllow lets any client exec into pods; keep Webhook")
    if overrides.get("readOnlyPort") not in (None, 0):
        problems.append("readOnlyPort must stay 0 (an unauthenticated port)")
    if overrides.get("cgroupDriver") not in (None, "systemd"):
        problems.append("cgroupDriver must be systemd (containerd is configured with SystemdCgroup)")
    return problems


class Node(NodeSettings):
    name: str
    address: IPAddress
    pod_cidr: Cidr | None = None
    # The host is gone for good: on this `up` nothing more runs over SSH for it; delete the node
    # from the config afterwards and only its cluster side is removed (no drain: its pods are gone).
    host_gone: StrictBool = False
    # Raise it to issue the node a new bootstrap token on the next `up` (a host rebuilt under the same
    # name must bootstrap again; the old token is revoked): reviewable, unlike a forced replacement.
    token_generation: int = Field(1, ge=1)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        problem = k8s_names.dns1123_subdomain_error(value)
        if problem:
            raise invalid(value, f"is not a valid Kubernetes node name: {problem}")
        return value

    @property
    def ssh_host(self) -> str:
        return self.ssh.host or str(self.address)


class StackConfig(NamedTuple):
    cluster: Cluster
    nodes: tuple[Node, ...]
    ca_key_pem: str | None  # plaintext or SecretPlaceholder; the program wraps it as a secret
    ssh_private_key: str | None
    warnings: tuple[str, ...] = ()  # valid but worth saying (deprecations), by key path
    fleet: Fleet = Fleet()  # which stack of a fleet this is (k8s_workers/config/fleet.py)
