"""Kubernetes' own rules for names, labels and taints, as plain predicates.

Each check returns None when the value is acceptable, else a sentence saying why
Kubernetes (or the kubelet) would refuse it. Sources: apimachinery's
validation.IsDNS1123Subdomain / IsQualifiedName / IsValidLabelValue and the labels the kubelet
sets itself (k8s.io/kubelet/pkg/apis/well_known_labels.go).
"""

import re

_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = re.compile(rf"^{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*$")
_QUALIFIED_NAME_PART = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_BOOTSTRAP_GROUP_TAIL = re.compile(r"^[a-z0-9:-]{0,255}[a-z0-9]$")

TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")

# Labels the kubelet sets on its own Node from what it finds on the host: a declared value would
# be overwritten at the kubelet's next start.
_KUBELET_LABELS = frozenset(
    {
        "kubernetes.io/hostname",
        "kubernetes.io/os",
        "kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/arch",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "topology.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/region",
    }
)
# Taint prefixes that controllers add and remove (not-ready, unreachable, pressure, uninitialized):
# a declared one would fight them. `k8s-workers/` holds this program's startup taint.
_CONTROLLER_TAINT_PREFIXES = ("node.kubernetes.io/", "node.cloudprovider.kubernetes.io/", "k8s-workers/")


def dns1123_subdomain_error(value: str) -> str | None:
    if len(value) > 253:
        return "must be at most 253 characters"
    if not _DNS1123_SUBDOMAIN.match(value):
        return (
            "must consist of lower case alphanumeric characters, '-' or '.', "
            "and start and end with an alphanumeric character"
        )
    return None


def qualified_name_error(key: str) -> str | None:
    """A label or taint key: optional DNS-subdomain prefix, '/', a name of <= 63 chars."""
    prefix, _, name = key.rpartition("/")
    if "/" in key and not prefix:
        return "has an empty prefix before '/'"
    if prefix:
        problem = dns1123_subdomain_error(prefix)
        if problem:
            return f"prefix {prefix!r} {problem}"
    if not name:
        return "name part must not be empty"
    if len(name) > 63:
        return "name part must be at most 63 characters"
    if not _QUALIFIED_NAME_PART.match(name):
        return (
            "name part must consist of alphanumeric characters, '-', '_' or '.', "
            "and start and end with an alphanumeric character"
        )
    return None


def label_value_error(value: str) -> str | None:
    if value == "":
        return None
    if len(value) > 63:
        return "must be at most 63 characters"
    if not _QUALIFIED_NAME_PART.match(value):
        return (
            "must consist of alphanumeric characters, '-', '_' or '.', and start and end with an alphanumeric character"
        )
    return None


def kubelet_owned_label_error(key: str) -> str | None:
    if key in _KUBELET_LABELS:
        return "the kubelet sets this label itself from the host and would overwrite a declared value"
    return None


def controller_owned_taint_error(key: str) -> str | None:
    if key.startswith(_CONTROLLER_TAINT_PREFIXES) and key != "node.kubernetes.io/out-of-service":
        return "taints under this prefix belong to Kubernetes' controllers (or to this program's startup taint)"
    return None


def bootstrap_group_for(node_name: str) -> str:
    """The token's extra group: the node name reduced to what the apiserver accepts.

    Node names may hold dots (DNS subdomains); bootstrap groups may not, so dots
    become dashes. The result always matches the apiserver's pattern because node
    names are validated as DNS subdomains first.
    """
    tail = node_name.lower().replace(".", "-")
    tail = re.sub(r"[^a-z0-9:-]", "-", tail).strip("-:")[:256]
    if not _BOOTSTRAP_GROUP_TAIL.match(tail):
        raise ValueError(f"cannot derive a bootstrap group from node name {node_name!r}")
    return f"system:bootstrappers:{tail}"
