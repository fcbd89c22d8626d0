"""Bad configs: each is refused before any resource is registered, naming its key path."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import pulumi
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from k8s_workers.config.loader import load_config
from tests.conftest import base_config
from tests.harness import run_program
from tests.pki import make_ca

Mutation = Callable[[dict[str, Any]], None]


def _leaf_certificate() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not-a-ca")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _set(path: str, value: Any) -> Mutation:
    """Set a value at a dotted path; [i] indexes lists."""

    def apply(raw: dict[str, Any]) -> None:
        parts = path.replace("]", "").replace("[", ".").split(".")
        target: Any = raw
        for part in parts[:-1]:
            target = target[int(part)] if part.isdigit() else target.setdefault(part, {})
        last = parts[-1]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return apply


def _delete(path: str) -> Mutation:
    def apply(raw: dict[str, Any]) -> None:
        parts = path.split(".")
        target: Any = raw
        for part in parts[:-1]:
            target = target[part]
        del target[parts[-1]]

    return apply


def _artifact_sha(name: str, arch: str, value: str) -> Mutation:
    def apply(raw: dict[str, Any]) -> None:
        raw["cluster"]["binaries"]["artifacts"][name]["sha256"][arch] = value

    return apply


def _both(*mutations: Mutation) -> Mutation:
    def apply(raw: dict[str, Any]) -> None:
        for mutation in mutations:
            mutation(raw)

    return apply


# (id, mutation, key path in the message, words of the message)
CASES: list[tuple[str, Mutation, str, str]] = [
    ("duplicate-name", _set("nodes[1].name", "worker-1"), "nodes[1].name", "duplicates nodes[0]"),
    ("duplicate-address", _set("nodes[1].address", "192.0.2.11"), "nodes[1].address", "duplicates nodes[0]"),
    ("name-capitals", _set("nodes[0].name", "Worker-1"), "nodes[0].name", "not a valid Kubernetes node name"),
    ("name-underscore", _set("nodes[0].name", "worker_1"), "nodes[0].name", "not a valid Kubernetes node name"),
    ("name-too-long", _set("nodes[0].name", "a" * 254), "nodes[0].name", "at most 253"),
    ("bad-ip", _set("nodes[1].address", "10.0.0.300"), "nodes[1].address", "'10.0.0.300' is not an IP address"),
    ("missing-address", _set("nodes[0]", {"name": "w", "podCidr": "10.244.9.0/24"}), "nodes[0].address", "is required"),
    ("service-cidr-not-cidr", _set("cluster.serviceCidr", "10.96.0.0"), "cluster.serviceCidr", "is not a CIDR"),
    ("pod-cidr-host-bits", _set("cluster.podCidr", "10.244.0.1/16"), "cluster.podCidr", "host bits set"),
    ("cidrs-overlap", _set("cluster.podCidr", "10.96.0.0/16"), "cluster.podCidr", "overlaps cluster.serviceCidr"),
    ("dns-outside-services", _set("cluster.clusterDns", "10.244.0.10"), "cluster.clusterDns", "outside cluster.serviceCidr"),
    ("dns-not-ip", _set("cluster.clusterDns", "dns"), "cluster.clusterDns", "is not an IP address"),
    ("ttl-zero", _set("cluster.bootstrapTokenTtlHours", 0), "cluster.bootstrapTokenTtlHours", "at least 1"),
    ("ttl-too-long", _set("cluster.bootstrapTokenTtlHours", 1000), "cluster.bootstrapTokenTtlHours", "at most 168"),
    ("typo-cluster-key", _set("cluster.podCIDR", "10.0.0.0/8"), "cluster.podCIDR", "unknown key"),
    ("typo-node-key", _set("nodes[0].adress", "192.0.2.50"), "nodes[0].adress", "did you mean 'address'"),
    ("typo-top-level", _set("nodse", []), "nodse", "did you mean 'nodes'"),
    ("missing-ca", _delete("cluster.caCert"), "cluster.caCert", "exactly one of caCert and caCertFile"),
    ("unparsable-ca", _set("cluster.caCert", "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"), "cluster.caCert", "not a parsable PEM certificate"),
    ("ca-not-a-ca", _set("cluster.caCert", _leaf_certificate()), "cluster.caCert", "not a CA"),
    ("ca-file-missing", _both(_delete("cluster.caCert"), _set("cluster.caCertFile", "/nonexistent/ca.crt")), "cluster.caCertFile", "not a readable file"),
    ("ca-key-mismatch", _set("caKey", make_ca("other").key_pem), "caKey", "does not belong to the cluster CA"),
    ("ca-key-garbage", _set("caKey", "not a key"), "caKey", "not an unencrypted PEM private key"),
    ("bad-sha256", _artifact_sha("kubelet", "amd64", "abc123"), "cluster.binaries.artifacts.kubelet.sha256.amd64", "is not a sha256"),
    ("missing-arch-sha", _both(_set("nodes[1].arch", "arm64"), lambda r: r["cluster"]["binaries"]["artifacts"]["runc"]["sha256"].pop("arm64")), 'cluster.binaries.artifacts["runc"].sha256.arm64', "worker-2.example.org"),
    ("missing-artifact", lambda r: r["cluster"]["binaries"]["artifacts"].pop("kubelet"), 'cluster.binaries.artifacts["kubelet"]', "is required"),
    ("url-placeholder", _set("cluster.binaries.artifacts.kubelet.url", "https://x.example/{ver}/kubelet"), "cluster.binaries.artifacts.kubelet.url", "unknown placeholders"),
    ("label-bad-key", _set("nodes[0].labels", {"bad key": "x"}), "nodes[0].labels", "label key 'bad key'"),
    ("label-kubelet-owns", _set("defaults.labels", {"kubernetes.io/hostname": "x"}), "defaults.labels", "the kubelet sets this label itself"),
    ("taint-controller-owns", _set("nodes[1].taints[0].key", "node.kubernetes.io/not-ready"), "nodes[1].taints[0].key", "belong to Kubernetes' controllers"),
    ("taint-startup", _set("nodes[1].taints[0].key", "k8s-workers/uninitialized"), "nodes[1].taints[0].key", "startup taint"),
    ("kubelet-register-with-taints", _set("defaults.kubelet", {"registerWithTaints": []}), "defaults.kubelet", "declare taints under `taints`"),
    ("label-value-too-long", _set("nodes[0].labels", {"team": "x" * 64}), "nodes[0].labels", "at most 63"),
    ("taint-bad-effect", _set("nodes[1].taints[0].effect", "NoRun"), "nodes[1].taints[0].effect", "'NoRun' is not one of"),
    ("taint-bad-key", _set("nodes[1].taints[0].key", "-bad"), "nodes[1].taints[0].key", "not a valid taint key"),
    ("version-too-old", _set("cluster.kubernetesVersion", "1.29.3"), "cluster.kubernetesVersion", "not supported"),
    ("api-server-http", _set("cluster.apiServer", "http://192.0.2.1:6443"), "cluster.apiServer", "not an https URL"),
    ("kubelet-typo", _set("nodes[1].kubelet", {"maxPod": 10}), "nodes[1].kubelet", "did you mean 'maxPods'"),
    ("kubelet-quoted-bool", _set("defaults.kubelet", {"authentication": {"anonymous": {"enabled": "true"}}}), "defaults.kubelet.authentication.anonymous.enabled", "is not true or false, unquoted"),
    ("kubelet-bad-duration", _set("nodes[0].kubelet", {"shutdownGracePeriod": "sixty"}), "nodes[0].kubelet.shutdownGracePeriod", "is not a duration"),
    ("kubelet-bad-nested-key", _set("nodes[0].kubelet", {"authentication": {"anonymus": {}}}), "nodes[0].kubelet.authentication.anonymus", "did you mean 'anonymous'"),
    ("kubelet-field-of-a-newer-minor", _both(_set("cluster.kubernetesVersion", "1.36.4"), _set("nodes[0].kubelet", {"defaultPodSysctls": []})), "nodes[0].kubelet.defaultPodSysctls", "not a KubeletConfiguration field in Kubernetes 1.36 (it is in 1.37)"),
    ("kubelet-twice", _set("nodes[1].kubelet", {"maxPods": 60}), "nodes[1].kubelet", "is also the node setting `maxPods`: set it once"),
    ("kubelet-twice-map", _set("defaults.kubelet", {"evictionHard": {"memory.available": "1Gi"}}), "defaults.kubelet", "set it once, as `evictionHard`"),
    ("extra-arg-config-field", _set("nodes[0].kubeletExtraArgs", ["--serialize-image-pulls=false"]), "nodes[0].kubeletExtraArgs", "set it under `kubelet:` as `serializeImagePulls`"),
    ("extra-arg-twice", _set("nodes[0].kubeletExtraArgs", ["--max-pods=50"]), "nodes[0].kubeletExtraArgs", "sets the node setting `maxPods` a second way"),
    ("kubelet-always-allow", _set("defaults.kubelet", {"authorization": {"mode": "AlwaysAllow"}}), "defaults.kubelet", "AlwaysAllow"),
    ("kubelet-read-only-port", _set("defaults.kubelet", {"readOnlyPort": 10255}), "defaults.kubelet", "readOnlyPort must stay 0"),
    ("removed-flag", _set("defaults.kubeletExtraArgs", ["--network-plugin=cni"]), "defaults.kubeletExtraArgs", "removed in 1.24"),
    ("owned-flag", _set("nodes[0].kubeletExtraArgs", ["--node-ip=192.0.2.99"]), "nodes[0].kubeletExtraArgs", "set by this program"),
    ("flag-anonymous-auth", _set("defaults.kubeletExtraArgs", ["--anonymous-auth=true"]), "defaults.kubeletExtraArgs", "would undo a secure default"),
    ("flag-always-allow", _set("nodes[1].kubeletExtraArgs", ["--authorization-mode=AlwaysAllow"]), "nodes[1].kubeletExtraArgs", "AlwaysAllow lets any client exec"),
    ("flag-read-only-port", _set("defaults.kubeletExtraArgs", ["--read-only-port=10255"]), "defaults.kubeletExtraArgs", "readOnlyPort must stay 0"),
    ("ssh-port-range", _set("nodes[0].ssh", {"port": 70000}), "nodes[0].ssh.port", "at most 65535"),
    ("host-key-garbage", _set("defaults.ssh.hostKey", "not-a-key"), "defaults.ssh.hostKey", "not an SSH public host key"),
    ("bridge-needs-pod-cidr", lambda r: r["nodes"][0].pop("podCidr"), "nodes[0].podCidr", "required when cluster.cni.mode is bridge"),
    ("node-cidr-outside", _set("nodes[0].podCidr", "10.245.1.0/24"), "nodes[0].podCidr", "not inside cluster.podCidr"),
    ("node-cidrs-overlap", _set("nodes[1].podCidr", "10.244.1.0/25"), "nodes[1].podCidr", "overlaps nodes[0].podCidr"),
    ("cni-mode", _set("cluster.cni", {"mode": "flannel"}), "cluster.cni.mode", "'flannel' is not one of"),
    ("proxy-mode", _set("cluster.kubeProxy", {"mode": "userspace"}), "cluster.kubeProxy.mode", "'userspace' is not one of"),
    ("renewal-after-validity", _set("cluster.kubeProxyCertificate", {"validityHours": 100, "earlyRenewalHours": 200}), "cluster.kubeProxyCertificate.earlyRenewalHours", "less than validityHours"),
    ("nodes-not-list", _set("nodes", {"worker-1": {}}), "nodes", "must be a list"),
    ("quantity", _set("defaults.systemReserved", {"memory": "lots"}), 'defaults.systemReserved.memory', "not a Kubernetes quantity"),
    ("host-key-missing", lambda r: r["nodes"][1].pop("ssh"), "nodes[1].ssh.hostKey", "is required"),
    ("containerd-major-mismatch", lambda r: r["cluster"]["binaries"]["artifacts"]["containerd"].update(version="1.7.28"), "cluster.containerRuntime.containerdMajor", "version 1.7"),
    ("bridge-name-too-long", _set("cluster.cni", {"mode": "bridge", "bridgeName": "a-very-long-bridge-name"}), "cluster.cni.bridgeName", "interface name"),
    ("sandbox-image-garbage", _set("cluster.containerRuntime", {"sandboxImage": "pause' = evil"}), "cluster.containerRuntime.sandboxImage", "not an image reference"),
    ("eviction-signal", _set("defaults.evictionHard", {"memory.free": "1Gi"}), 'defaults.evictionHard["memory.free"]', "is not one of"),
]  # fmt: skip


@pytest.mark.parametrize(("mutation", "path", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_config_is_refused_with_its_key_path(test_ca, ssh_key, mutation, path, words):
    raw = base_config(test_ca, ssh_key)
    mutation(raw)
    run = run_program(raw)
    assert isinstance(run.error, pulumi.RunError), run.error
    lines = [line.strip().removeprefix("- ") for line in str(run.error).splitlines()[1:]]
    assert any(line.startswith(f"{path}: ") and words in line for line in lines), "\n".join(lines)
    assert run.resources == [], "resources were registered before the config was checked"


def test_all_errors_are_reported_at_once(test_ca, ssh_key):
    raw = base_config(test_ca, ssh_key)
    raw["nodes"][0]["address"] = "10.0.0.300"
    raw["nodes"][1]["name"] = "Bad_Name"
    raw["cluster"]["clusterDns"] = "10.244.0.10"
    raw["cluster"]["bootstrapTokenTtlHours"] = 0
    run = run_program(raw)
    message = str(run.error)
    assert "(4 errors)" in message
    for path in ("nodes[0].address", "nodes[1].name", "cluster.clusterDns", "cluster.bootstrapTokenTtlHours"):
        assert f"{path}: " in message
    assert "Traceback" not in message
    assert run.resources == []


def test_at_least_thirty_cases():
    assert len(CASES) >= 30


def test_key_material_is_never_echoed(test_ca, ssh_key):
    raw = base_config(test_ca, ssh_key)
    raw["cluster"]["caKeyFile"] = test_ca.key_pem  # pasted where a path belongs
    raw.pop("caKey")
    run = run_program(raw)
    message = str(run.error)
    assert "cluster.caKeyFile: <a long or secret value, not shown> is not a readable file" in message
    assert "PRIVATE KEY" not in message and test_ca.key_pem.splitlines()[1] not in message


@pytest.mark.parametrize(
    ("mutation", "path", "words"),
    [
        (_set("defaults.hostnameOverride", "yes"), "defaults.hostnameOverride", "must be true or false"),
        (
            _set("nodes[0].ssh.insecureIgnoreHostKey", "true"),
            "nodes[0].ssh.insecureIgnoreHostKey",
            "must be true or false",
        ),
        (_set("cluster.kubernetesVersion", 1.36), "cluster.kubernetesVersion", "quote the full version"),
        (
            _set("defaults.labels", {"node.kubernetes.io/gpu": True}),
            "defaults.labels",
            'quote it (node.kubernetes.io/gpu: "true")',
        ),
        (
            _set("nodes[0].ssh.hostKey", "192.0.2.11 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx"),
            "nodes[0].ssh.hostKey",
            "drop the host",
        ),
    ],
    ids=["yes-as-bool", "quoted-bool", "unquoted-version", "bool-label", "keyscan-line"],
)
def test_yaml_traps_are_named_with_a_hint(test_ca, ssh_key, mutation, path, words):
    """The common YAML mistakes, each refused at its key path with what to write instead."""
    raw = base_config(test_ca, ssh_key)
    mutation(raw)
    run = run_program(raw)
    assert isinstance(run.error, pulumi.RunError), run.error
    lines = [line for line in str(run.error).splitlines() if f"- {path}:" in line]
    assert lines and words in lines[0], str(run.error)
    assert "Input should be" not in str(run.error)  # pydantic's own wording does not leak
    assert run.resources == []


def test_a_deprecated_kubelet_field_is_a_warning_naming_where(test_ca, ssh_key):
    raw = base_config(test_ca, ssh_key)
    raw["nodes"][0]["kubelet"] = {"streamingConnectionIdleTimeout": "4h"}
    config = load_config(raw, require_secrets=False)
    assert any(w.startswith("nodes[0].kubelet.streamingConnectionIdleTimeout: deprecated") for w in config.warnings), (
        config.warnings
    )


def test_kubelet_schemas_come_from_the_go_types_of_each_supported_minor():
    """The data the checks use: one generated schema per supported minor, with its source module."""
    import json

    from k8s_workers.config.kubelet_schema import SCHEMAS, schema, supported_minors
    from k8s_workers.config.models import SUPPORTED_MINORS

    assert supported_minors() == tuple(SUPPORTED_MINORS)
    for minor in supported_minors():
        data = json.loads((SCHEMAS / f"1.{minor}.json").read_text())
        assert data["module"].startswith(f"k8s.io/kubelet@v0.{minor}.")
        fields = schema(minor)["properties"]
        assert fields["maxPods"] == {"type": "integer"}
        assert fields["authentication"]["properties"]["anonymous"]["properties"]["enabled"] == {"type": "boolean"}
        assert fields["evictionHard"] == {"type": "map", "values": {"type": "string"}}


def test_the_dev_stacks_example_ca_and_host_keys_are_named_with_how_to_get_ones_own(test_ca, ssh_key):
    """What a newcomer who copied Pulumi.dev.yaml meets first: each example value by its key path,
    with the command that gives the real one."""
    from pathlib import Path

    import yaml

    from k8s_workers.config.examples import is_example_ca, is_example_host_key

    dev = yaml.safe_load((Path(__file__).resolve().parent.parent / "Pulumi.dev.yaml").read_text())["config"]
    example_ca = dev["k8s-workers:cluster"]["caCert"]
    example_keys = [n["ssh"]["hostKey"] for n in dev["k8s-workers:nodes"]]
    assert is_example_ca(example_ca) and all(
        is_example_host_key(k) for k in example_keys
    )  # the constants follow the file
    raw = base_config(test_ca, ssh_key)
    assert not load_config(raw).warnings  # a stack of its own: nothing said
    raw["cluster"]["caCert"] = example_ca
    del raw["caKey"]  # no CA key: the cluster issues kube-proxy's certificate
    raw["nodes"][1]["ssh"]["hostKey"] = example_keys[0]
    warnings = load_config(raw).warnings
    assert any(
        w.startswith("cluster.caCert: the dev stack's example CA") and "kubectl config view" in w for w in warnings
    )
    assert any(
        w.startswith("nodes[1].ssh.hostKey: the dev stack's example key") and "ssh-keyscan" in w for w in warnings
    )
    assert not any(w.startswith("nodes[0].ssh.hostKey") for w in warnings)
