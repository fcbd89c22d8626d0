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
import ipaddress
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic.alias_generators import to_camel

from components import k8s_names
from components.kubelet_fields import KUBELET_CONFIGURATION_FIELDS

SUPPORTED_MINORS = (31, 32, 33, 34)
ARCHES = ("amd64", "arm64")
ARTIFACTS = ("kubelet", "kube-proxy", "containerd", "runc", "cni-plugins")
TOP_LEVEL_KEYS = ("cluster", "defaults", "nodes", "caKey", "sshPrivateKey")
SECRET_KEYS = ("caKey", "sshPrivateKey")


class SecretPlaceholder(str):
    """A `secure:` value that could not be decrypted (render and tests run without the passphrase)."""


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


# ------------------------------------------------------------------ value types


def _fail(value: Any, problem: str) -> ValueError:
    return ValueError(f"{value!r} {problem}")


def _ip(value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(value) if isinstance(value, str) else _raise()
    except ValueError:
        raise _fail(value, "is not an IP address") from None


def _cidr(value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if not isinstance(value, str) or "/" not in value:
        raise _fail(value, "is not a CIDR (expected e.g. 10.96.0.0/12)")
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        if "host bits set" in str(exc):
            fixed = ipaddress.ip_network(value, strict=False)
            raise _fail(value, f"has host bits set (did you mean {fixed}?)") from None
        raise _fail(value, "is not a CIDR (expected e.g. 10.96.0.0/12)") from None


def _raise() -> Any:
    raise ValueError


def _sha256(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-f]{64}", value):
        raise _fail(value, "is not a sha256 (64 lower-case hex digits)")
    return value


_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti|P|Pi|E|Ei)?$")


def _quantity(value: Any) -> str:
    if isinstance(value, int) and value >= 0:
        return str(value)
    if not isinstance(value, str) or not _QUANTITY.match(value):
        raise _fail(value, "is not a Kubernetes quantity (e.g. 100m, 512Mi, 2Gi)")
    return value


def _threshold(value: Any) -> str:
    if isinstance(value, str) and re.fullmatch(r"[0-9]+(\.[0-9]+)?%", value):
        if float(value[:-1]) > 100:
            raise _fail(value, "is more than 100%")
        return value
    try:
        return _quantity(value)
    except ValueError:
        raise _fail(value, "is neither a percentage nor a quantity (e.g. 10%, 200Mi)") from None


def _pem_certificate(value: Any) -> str:
    if not isinstance(value, str):
        raise _fail(value, "is not a PEM certificate")
    try:
        cert = x509.load_pem_x509_certificate(value.encode())
    except ValueError:
        raise ValueError("is not a parsable PEM certificate") from None
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise ValueError("is a certificate but not a CA (basicConstraints CA:TRUE missing)")
    return value.strip() + "\n"


def _host_key(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(
        r"(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+=*( .*)?", value.strip()
    ):
        raise _fail(value, "is not an SSH public host key ('ssh-ed25519 AAAA...')")
    return value.strip()


IPAddress = Annotated[ipaddress.IPv4Address | ipaddress.IPv6Address, PlainValidator(_ip)]
Cidr = Annotated[ipaddress.IPv4Network | ipaddress.IPv6Network, PlainValidator(_cidr)]
Sha256 = Annotated[str, PlainValidator(_sha256)]
Quantity = Annotated[str, PlainValidator(_quantity)]
Threshold = Annotated[str, PlainValidator(_threshold)]
PemCertificate = Annotated[str, PlainValidator(_pem_certificate)]
HostKey = Annotated[str, PlainValidator(_host_key)]
Arch = Literal["amd64", "arm64"]
ArtifactName = Literal["kubelet", "kube-proxy", "containerd", "runc", "cni-plugins"]
ReservedResource = Literal["cpu", "memory", "ephemeral-storage", "pid"]
EvictionSignal = Literal[
    "memory.available",
    "nodefs.available",
    "nodefs.inodesFree",
    "imagefs.available",
    "imagefs.inodesFree",
    "containerfs.available",
    "containerfs.inodesFree",
    "pid.available",
]


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
            raise _fail(value, "is not an http(s) URL")
        unknown = set(re.findall(r"\{([^}]*)\}", value)) - {"version", "arch"}
        if unknown:
            raise _fail(value, f"has unknown placeholders {sorted(unknown)} (allowed: {{version}}, {{arch}})")
        return value


class Binaries(_Model):
    source: Literal["download", "preinstalled"] = "download"
    # Where the binaries are (preinstalled) or go (download); the units run them from here.
    bin_dir: str = "/usr/local/bin"
    artifacts: dict[ArtifactName, ArtifactSpec] = {}

    @field_validator("bin_dir")
    @classmethod
    def _bin_dir(cls, value: str) -> str:
        if not re.fullmatch(r"(/[A-Za-z0-9._-]+)+", value):
            raise _fail(value, "is not an absolute directory path")
        return value


class ContainerRuntime(_Model):
    type: Literal["containerd", "external"] = "containerd"
    # CRI socket the kubelet talks to; for docker users, cri-dockerd's socket.
    endpoint: str = "unix:///run/containerd/containerd.sock"
    containerd_major: Literal[1, 2] = 2
    sandbox_image: str = "registry.k8s.io/pause:3.10"

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if not re.fullmatch(r"unix:///\S+", value):
            raise _fail(value, "is not a CRI endpoint (expected unix:///path/to.sock)")
        return value


class Cni(_Model):
    mode: Literal["calico", "bridge", "none"] = "calico"
    bridge_name: str = "cni0"


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
            raise _fail(value, f"must be less than validityHours ({validity})")
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
    manage_kube_proxy_rbac: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        problem = k8s_names.dns1123_subdomain_error(value)
        if problem:
            raise _fail(value, problem)
        return value

    @field_validator("api_server")
    @classmethod
    def _api_server(cls, value: str) -> str:
        if not re.fullmatch(r"https://[^\s/:]+(:[0-9]{1,5})?/?", value):
            raise _fail(value, "is not an https URL of the API server (https://host:6443)")
        return value.rstrip("/")

    @field_validator("ca_cert_file", "ca_key_file")
    @classmethod
    def _readable(cls, value: str) -> str:
        path = Path(value).expanduser()
        if not path.is_file():
            raise _fail(value, "is not a readable file")
        return str(path)

    @field_validator("ca_cert_file")
    @classmethod
    def _ca_file_parses(cls, value: str) -> str:
        try:
            _pem_certificate(Path(value).read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"{value!r}: {exc}") from None
        return value

    @field_validator("cluster_domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        problem = k8s_names.dns1123_subdomain_error(value.rstrip("."))
        if problem:
            raise _fail(value, problem)
        return value.rstrip(".")

    @field_validator("kubernetes_version")
    @classmethod
    def _version(cls, value: str) -> str:
        match = re.fullmatch(r"v?1\.([0-9]+)\.([0-9]+)", str(value))
        if not match:
            raise _fail(value, "is not a Kubernetes version (e.g. 1.33.4)")
        if int(match.group(1)) not in SUPPORTED_MINORS:
            raise _fail(value, "is not supported (supported: 1.31 to 1.34)")
        return str(value).lstrip("v")

    @property
    def ca_cert_pem(self) -> str:
        if self.ca_cert is not None:
            return self.ca_cert
        assert self.ca_cert_file is not None
        return _pem_certificate(Path(self.ca_cert_file).read_text())

    @property
    def minor(self) -> int:
        return int(self.kubernetes_version.split(".")[1])


# ------------------------------------------------------------------ nodes


class Ssh(_Model):
    user: str = "root"
    host: str | None = None  # default: the node's address
    port: int = Field(22, ge=1, le=65535)
    private_key_file: str | None = None
    host_key: HostKey | None = None
    dial_error_limit: int = Field(3, ge=1, le=100)
    per_dial_timeout: int = Field(10, ge=1, le=300)

    @field_validator("user")
    @classmethod
    def _user(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z_][a-z0-9_.-]{0,31}", value):
            raise _fail(value, "is not a POSIX user name")
        return value

    @field_validator("private_key_file")
    @classmethod
    def _key_file(cls, value: str) -> str:
        path = Path(value).expanduser()
        if not path.is_file():
            raise _fail(value, "is not a readable file")
        return str(path)


class Taint(_Model):
    key: str
    value: str = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        problem = k8s_names.qualified_name_error(value)
        if problem:
            raise _fail(value, f"is not a valid taint key: {problem}")
        return value

    @field_validator("value")
    @classmethod
    def _value(cls, value: str) -> str:
        problem = k8s_names.label_value_error(value)
        if problem:
            raise _fail(value, f"is not a valid taint value: {problem}")
        return value

    def flag(self) -> str:
        return f"{self.key}={self.value}:{self.effect}" if self.value else f"{self.key}:{self.effect}"


# Flags the kubelet no longer accepts (NOTES.md), and flags this program sets itself.
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
    "--node-labels",
    "--register-with-taints",
    "--hostname-override",
)


class NodeSettings(_Model):
    """Everything `defaults` may set and each node may override."""

    arch: Arch = "amd64"
    ssh: Ssh = Ssh()
    labels: dict[str, str] = {}
    taints: list[Taint] = []
    # Deep-merged over the generated KubeletConfiguration.
    kubelet: dict[str, Any] = {}
    kubelet_extra_args: list[str] = []
    system_reserved: dict[ReservedResource, Quantity] = {
        "cpu": "100m",
        "memory": "256Mi",
        "ephemeral-storage": "1Gi",
    }
    kube_reserved: dict[ReservedResource, Quantity] = {
        "cpu": "100m",
        "memory": "256Mi",
        "ephemeral-storage": "1Gi",
    }
    eviction_hard: dict[EvictionSignal, Threshold] = {
        "memory.available": "200Mi",
        "nodefs.available": "10%",
        "nodefs.inodesFree": "5%",
        "imagefs.available": "15%",
    }
    max_pods: int = Field(110, ge=1, le=2500)
    pod_pids_limit: int = Field(4096, ge=-1)
    resolv_conf: str = "/etc/resolv.conf"
    # Off by default (CIS 4.2.8): the node name must then equal the host's hostname.
    hostname_override: bool = False

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key, label in value.items():
            problem = k8s_names.qualified_name_error(key) or k8s_names.kubelet_label_error(key)
            if problem:
                raise ValueError(f"label key {key!r}: {problem}")
            if not isinstance(label, str):
                raise ValueError(f"label {key!r}: value {label!r} must be a string")
            problem = k8s_names.label_value_error(label)
            if problem:
                raise ValueError(f"label {key!r}: value {label!r} {problem}")
        return value

    @field_validator("kubelet")
    @classmethod
    def _kubelet(cls, value: dict[str, Any]) -> dict[str, Any]:
        problems = []
        for key in value:
            if key not in KUBELET_CONFIGURATION_FIELDS:
                near = difflib.get_close_matches(key, KUBELET_CONFIGURATION_FIELDS, n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                problems.append(f"{key!r} is not a KubeletConfiguration field{hint}")
        for key in ("apiVersion", "kind"):
            if key in value:
                problems.append(f"{key!r} is set by this program")
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
                raise _fail(arg, "is not a --flag or --flag=value")
            if flag in _REMOVED_KUBELET_FLAGS:
                raise _fail(arg, _REMOVED_KUBELET_FLAGS[flag])
            if flag in _OWNED_KUBELET_FLAGS:
                raise _fail(arg, "is set by this program; use the matching setting instead")
            if any(c in arg for c in "\"'\\$`\n"):
                raise _fail(arg, "must not contain quotes, backslashes, '$', '`' or newlines")
        return value

    @field_validator("resolv_conf")
    @classmethod
    def _resolv(cls, value: str) -> str:
        if not value.startswith("/"):
            raise _fail(value, "is not an absolute path")
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

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        problem = k8s_names.dns1123_subdomain_error(value)
        if problem:
            raise _fail(value, f"is not a valid Kubernetes node name: {problem}")
        return value

    @property
    def ssh_host(self) -> str:
        return self.ssh.host or str(self.address)


class StackConfig(NamedTuple):
    cluster: Cluster
    nodes: tuple[Node, ...]
    ca_key_pem: str | None  # plaintext or SecretPlaceholder; the program wraps it as a secret
    ssh_private_key: str | None


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
            message = f"{value!r} must be {'at least' if 'ge' in err['ctx'] else 'at most'} {bound}"
        elif kind in ("literal_error", "enum"):
            message = f"{value!r} is not one of {err['ctx']['expected']}"
        else:
            message = f"{value!r}: {err['msg']}" if not isinstance(value, dict | list) else err["msg"]
        issues.append(ConfigIssue(format_path(loc), message))
    return issues


def _validate(model: type[_Model], data: Any, prefix: tuple[str | int, ...], issues: list[ConfigIssue]):
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        issues.extend(_pydantic_issues(exc, prefix))
        return None


def load_config(raw: Mapping[str, Any], *, require_secrets: bool = True) -> StackConfig:
    """Validate everything; raise ConfigError with all problems, or return the config.

    `require_secrets=False` is for render and tests: the CA key and SSH key may then be
    missing or SecretPlaceholders.
    """
    issues: list[ConfigIssue] = []
    for key in raw:
        if key not in TOP_LEVEL_KEYS:
            near = difflib.get_close_matches(key, TOP_LEVEL_KEYS, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            issues.append(ConfigIssue(key, f"unknown key{hint}; expected one of {list(TOP_LEVEL_KEYS)}"))

    cluster_raw = raw.get("cluster")
    if cluster_raw is None:
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
    for index, node_raw in enumerate(nodes_raw):
        if not isinstance(node_raw, Mapping):
            issues.append(ConfigIssue(f"nodes[{index}]", "must be a mapping with name and address"))
            continue
        # A bad default is reported once, under defaults, not again under every node.
        merged = deep_merge(defaults_raw if defaults is not None else {}, node_raw)
        node = _validate(Node, merged, ("nodes", index), issues)
        if node is not None:
            nodes.append((index, node))

    ca_key = raw.get("caKey")
    ssh_key = raw.get("sshPrivateKey")
    issues += _network_issues(cluster_raw if isinstance(cluster_raw, Mapping) else {})
    if cluster is not None:
        issues += _cluster_issues(cluster, ca_key, require_secrets)
        issues += _artifact_issues(cluster, [n for _, n in nodes])
    issues += _duplicate_issues(nodes_raw)
    issues += _node_issues(cluster, nodes)
    if isinstance(ssh_key, str) and not isinstance(ssh_key, SecretPlaceholder) and "PRIVATE KEY" not in ssh_key:
        issues.append(ConfigIssue("sshPrivateKey", "is not a PEM/OpenSSH private key"))

    if issues:
        raise ConfigError(issues)
    assert cluster is not None
    return StackConfig(cluster, tuple(n for _, n in nodes), _ca_key_pem(cluster, ca_key), ssh_key)


def _ca_key_pem(cluster: Cluster, ca_key: str | None) -> str | None:
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
    services = _parsed(_cidr, cluster_raw.get("serviceCidr"))
    pods = _parsed(_cidr, cluster_raw.get("podCidr"))
    dns = _parsed(_ip, cluster_raw.get("clusterDns"))
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


def _cluster_issues(cluster: Cluster, ca_key: Any, require_secrets: bool) -> list[ConfigIssue]:
    issues = []
    if (cluster.ca_cert is None) == (cluster.ca_cert_file is None):
        issues.append(ConfigIssue("cluster.caCert", "set exactly one of caCert and caCertFile"))
    if ca_key is not None and cluster.ca_key_file is not None:
        issues.append(ConfigIssue("caKey", "set either caKey (a secret) or cluster.caKeyFile, not both"))
    key_pem = ca_key if ca_key is not None else None
    key_path = "caKey"
    if key_pem is None and cluster.ca_key_file is not None:
        key_pem, key_path = Path(cluster.ca_key_file).read_text(), "cluster.caKeyFile"
    if key_pem is None:
        if require_secrets:
            issues.append(
                ConfigIssue(
                    "caKey",
                    "is required to sign kube-proxy's certificate: "
                    "`pulumi config set --secret caKey < ca.key` or set cluster.caKeyFile",
                )
            )
    elif not isinstance(key_pem, SecretPlaceholder):
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
    if cluster.binaries.source != "download":
        return []
    issues = []
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
