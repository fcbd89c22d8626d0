"""A join that is finished when the node works (issue 8), on real nodes: the install's readiness
gate, serving certificates approved against the inventory, and bootstrap tokens that only this
program's tokens can use."""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import subprocess

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from components.node_registration import _Provider
from lab import cluster, remote
from lab.install import (
    install_jobs,
    issue_tokens,
    lab_token,
    registration_props,
    remember_token,
    removal_jobs,
    run_all,
    token_props,
)
from lab.paths import ADMIN_KUBECONFIG
from tests.e2e.helpers import NAMESPACE, PORT, install, run_workload, serving_csrs, wait_for


def test_a_node_whose_kubelet_cannot_start_fails_with_a_diagnosis_and_the_others_succeed(
    installed, lab_config, systemd_hosts
):
    config, jobs = installed
    broken = jobs[0].host.name

    def edit(raw: dict) -> None:
        raw["cluster"]["readinessTimeoutSeconds"] = 20
        for node in raw["nodes"]:
            if node["name"] == broken:
                # Valid to the config, refused by the kubelet when it loads it: a soft threshold needs a grace period.
                node["kubelet"] = {"evictionSoft": {"memory.available": "100Mi"}}

    run_all(removal_jobs(config, systemd_hosts))
    cluster.delete_nodes(j.host.name for j in jobs)
    issue_tokens(config, systemd_hosts)
    results = run_all(install_jobs(lab_config(edit=edit), systemd_hosts))
    failure = results[broken]
    assert isinstance(failure, remote.HostError), failure
    message = str(failure)
    # The kubelet bootstraps its client certificate before it reads the eviction settings: the Node
    # is then never registered.
    assert f"k8s-workers[{broken}]: error: not Ready after 20s: Node {broken} is not registered" in message, message
    # The kubelet's own reason, even when systemd has restarted it since and its last lines are a new start.
    errors = message.split(f"k8s-workers[{broken}]: the kubelet's errors during this install:\n", 1)[-1]
    assert "grace period must be specified" in errors.split(f"k8s-workers[{broken}]: the kubelet is ")[0], message
    assert re.search(r"the kubelet is (active|activating|failed); its last log lines:", message), message
    assert "token" not in message.lower() or "bootstrap token" in message  # no secret, only the word
    for job in jobs[1:]:
        result = results[job.host.name]
        assert not isinstance(result, remote.HostError), result
        assert cluster.conditions(cluster.nodes()[job.host.name])["Ready"] == "True"  # Ready on return


def test_the_install_returns_only_once_its_node_is_ready(installed, systemd_hosts):
    """No waiting afterwards: when the install's command has returned, the cluster already says Ready."""
    config, jobs = installed
    run_all(removal_jobs(config, systemd_hosts))
    cluster.delete_nodes(j.host.name for j in jobs)
    issue_tokens(config, systemd_hosts)
    install(install_jobs(config, systemd_hosts))
    nodes = cluster.nodes()
    for job in jobs:
        assert cluster.conditions(nodes[job.host.name])["Ready"] == "True", job.host.name
        addresses = {a["type"]: a["address"] for a in nodes[job.host.name]["status"]["addresses"]}
        assert addresses["InternalIP"] == job.host.address


def test_serving_certificates_are_approved_against_the_inventory_and_logs_and_exec_work(installed):
    """What the program's per-node NodeRegistration did on `up` (its provider, called as the engine
    would, in the fixture): the node's own request approved, then `kubectl logs` and `exec` work."""
    config, jobs = installed
    names = [j.host.name for j in jobs]
    run_workload(names)
    for name in names:
        issued = serving_csrs(name)[0]
        assert any(
            c["type"] == "Approved" and c["reason"] == "K8sWorkersInventoryMatch"
            for c in issued["status"]["conditions"]
        )
    for name in names:
        pod = f"echo-{name}"
        logs = wait_for(  # the kubelet fetches its issued certificate within seconds
            f"kubectl logs {pod}",
            lambda pod=pod: cluster.kubectl("logs", "-n", NAMESPACE, pod, check=False).stdout,
            timeout=60,
        )
        assert f"as pod={pod} node={name}" in logs
        result = cluster.kubectl(
            "exec", "-n", NAMESPACE, pod, "--", "/echo", "-get", f"http://127.0.0.1:{PORT}/", "-expect", f"pod={pod}"
        )
        assert result.returncode == 0
    # Renewals: nothing pending, nothing planned; a kubelet asking again (as at renewal time) makes
    # the next `up` plan an update, which approves it.
    props = registration_props(config, names[0])
    assert not _Provider().diff("x", props, props).changes
    remote.shell(jobs[0].host, "rm -f /var/lib/kubelet/pki/kubelet-server-*.pem; systemctl restart kubelet")
    wait_for(
        "a new serving request",
        lambda: any(not c["status"].get("conditions") for c in serving_csrs(names[0])),
        timeout=60,
    )
    assert _Provider().diff("x", props, props).changes
    assert _Provider().update("x", props, props).outs["approved"]
    assert not _Provider().diff("x", props, props).changes


def _kubelet_kubeconfig(host) -> str:  # type: ignore[no-untyped-def]
    """A kubeconfig with the node's own kubelet credential (read from the node)."""
    pem = remote.shell(host, "cat /var/lib/kubelet/pki/kubelet-client-current.pem")
    admin = yaml.safe_load(ADMIN_KUBECONFIG.read_text())
    admin["users"][0]["user"] = {
        "client-certificate-data": base64.b64encode(pem.encode()).decode(),
        "client-key-data": base64.b64encode(pem.encode()).decode(),
    }
    return json.dumps(admin)


def test_a_node_asking_for_another_nodes_address_is_left_alone_and_reported(installed, tmp_path):
    """lab-2, with its real kubelet credential, asks for a serving certificate naming lab-1's
    address: the approver refuses it, says why, and approves nothing for it."""
    config, jobs = installed
    victim, thief = jobs[0].host, jobs[1].host
    key = ec.generate_private_key(ec.SECP256R1())
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                                 x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{thief.name}")]))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(victim.address))]), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    csr = {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": f"forged-{thief.name}"},
        "spec": {
            "signerName": "kubernetes.io/kubelet-serving",
            "usages": ["digital signature", "server auth"],
            "request": base64.b64encode(request.public_bytes(serialization.Encoding.PEM)).decode(),
        },
    }
    kubeconfig = tmp_path / "thief.conf"
    kubeconfig.write_text(_kubelet_kubeconfig(thief))
    kubeconfig.chmod(0o600)
    cluster.kubectl("delete", "csr", csr["metadata"]["name"], "--ignore-not-found")
    created = cluster.run_kubectl(["--kubeconfig", str(kubeconfig), "create", "-f", "-"], stdin=json.dumps(csr))
    assert created.returncode == 0, created.stderr  # a node may ask: the approver must say no
    outs = _Provider().update("x", {}, registration_props(config, thief.name)).outs
    assert f"forged-{thief.name}" not in outs["approved"]
    assert any(
        f"left alone forged-{thief.name} ({thief.name}): addresses ['{victim.address}'] are not declared" in line
        for line in outs["left_alone"]
    ), outs["left_alone"]
    forged = cluster.get("csr", f"forged-{thief.name}")
    assert not forged["status"].get("conditions")  # still pending: nobody approved it


def test_only_this_programs_bootstrap_tokens_may_ask_for_node_certificates(installed):
    """The bootstrap roles are bound to system:bootstrappers:k8s-workers: a bootstrap token made
    for anything else (here: a kubeadm-style one) cannot even ask for a node client certificate."""
    assert installed  # the cluster with its bindings
    other = {"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
             "metadata": {"name": "bootstrap-token-othr01", "namespace": "kube-system"},
             "stringData": {"token-id": "othr01", "token-secret": "0123456789abcdef",
                            "usage-bootstrap-authentication": "true",
                            "auth-extra-groups": "system:bootstrappers:other-purpose"}}  # fmt: skip
    cluster.apply([other])
    try:
        asked = cluster.run_kubectl(
            ["--token=othr01.0123456789abcdef", "auth", "can-i", "create", "certificatesigningrequests"]
        )
        assert asked.stdout.strip() == "no", (asked.stdout, asked.stderr)
    finally:
        cluster.kubectl("delete", "secret", "-n", "kube-system", "bootstrap-token-othr01", "--ignore-not-found")


def test_a_token_authenticates_until_its_node_joined_and_never_after(installed, systemd_hosts):
    """The registration revokes the token once the node has joined: `kubectl --token` is then
    refused, and neither resource plans anything afterwards (`pulumi up --refresh` stays quiet)."""
    from components import membership

    config, jobs = installed
    host = jobs[0].host
    token = lab_token(host.name)[0]

    def can_ask() -> subprocess.CompletedProcess:
        return cluster.run_kubectl([f"--token={token}", "auth", "can-i", "create", "certificatesigningrequests"])

    # kube-apiserver caches a successful token authentication for 10 s (TokenSuccessCacheTTL in
    # pkg/kubeapiserver/options/authentication.go): the refusal follows within that, not at once.
    wait_for("the revoked token refused", lambda: "Unauthorized" in can_ask().stderr, timeout=30)
    props = registration_props(config, host.name)
    assert not _Provider().diff("x", props, props).changes
    state = token_props(config, host.name)
    assert membership._Provider().read("x", state).outs == state  # refresh: as it was
    issue_tokens(
        config, [host]
    )  # its Secret made again (as after a lost cluster object): works until the next registration
    assert can_ask().stdout.strip() == "yes"
    assert _Provider().diff("x", props, props).changes  # the next `up` revokes it
    _Provider().update("x", props, props)
    wait_for("the token refused again", lambda: "Unauthorized" in can_ask().stderr, timeout=30)

    # Asked for on purpose (tokenGeneration raised): the membership makes a new token and revokes the old.
    olds = token_props(config, host.name)
    news = {**olds, "tokenGeneration": 2, "tokenId": None, "tokenSecret": None}
    assert membership._Provider().diff("x", olds, news).changes
    outs = membership._Provider().update("x", olds, news).outs
    remember_token(host.name, outs["tokenId"], outs["tokenSecret"])  # as the engine keeps it in state
    assert outs["tokenId"] != token.split(".")[0] and outs["restarts"] == [] and outs["drained"] is False
    fresh = f"{outs['tokenId']}.{outs['tokenSecret']}"
    asked = cluster.run_kubectl([f"--token={fresh}", "auth", "can-i", "create", "certificatesigningrequests"])
    assert asked.stdout.strip() == "yes", asked.stderr
    _Provider().update("x", registration_props(config, host.name), registration_props(config, host.name))


def test_labels_and_taints_change_on_the_node_and_nothing_on_the_host(installed, lab_config, systemd_hosts):
    """Added, changed and removed through the API: host files, kubelet and the Ready condition untouched."""
    from tests.e2e.helpers import all_paths, host_files, main_pids

    config, jobs = installed
    job = jobs[0]
    name = job.host.name
    node = cluster.nodes()[name]
    assert not any(t["key"] == "k8s-workers/uninitialized" for t in node["spec"].get("taints", []))
    files, pids = host_files(job.host, all_paths(job.plan)), main_pids(job.host)
    cluster.kubectl("taint", "node", name, "someone-else=x:PreferNoSchedule")  # not ours: left alone
    steps = [
        ({"team": "a"}, [{"key": "dedicated", "value": "batch", "effect": "NoSchedule"}]),
        ({"team": "b", "tier": "x"}, [{"key": "dedicated", "value": "web", "effect": "NoExecute"}]),
        ({}, []),
    ]
    for labels, taints in steps:

        def edit(raw: dict, labels=labels, taints=taints) -> None:
            for n in raw["nodes"]:
                if n["name"] == name:
                    n["labels"], n["taints"] = labels, taints

        changed = lab_config(edit=edit)
        old, new = registration_props(config, name), registration_props(changed, name)
        assert _Provider().diff("x", old, new).changes
        assert install(install_jobs(changed, [job.host]))[name].summary["files_changed"] == []  # the host: no change
        _Provider().update("x", old, new)
        node = cluster.nodes()[name]
        ours = {k: v for k, v in node["metadata"]["labels"].items() if k in ("team", "tier")}
        assert ours == labels
        seen = [t for t in node["spec"].get("taints", []) if t["key"] != "someone-else"]
        assert [{"key": t["key"], "value": t.get("value", ""), "effect": t["effect"]} for t in seen] == taints
        assert any(t["key"] == "someone-else" for t in node["spec"]["taints"])
        assert not _Provider().diff("x", new, new).changes
        config = changed
    assert host_files(job.host, all_paths(job.plan)) == files and main_pids(job.host) == pids
    cluster.kubectl("taint", "node", name, "someone-else-")
