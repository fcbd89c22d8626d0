"""What the program declares under mocks: cluster objects, certificates, secrets, commands."""

from __future__ import annotations

import datetime
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from k8s_workers.config.loader import load_config
from k8s_workers.decisions.rollout import services_digest
from k8s_workers.render.host_paths import PATHS
from k8s_workers.render.node_files import NodeSecrets, node_files
from k8s_workers.render.stack import render_stack
from k8s_workers.scripts.install_plan import plan_node, sha256_text
from tests.harness import DYNAMIC, Run, run_program
from tests.placed import placed_files

CRB = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding"
REMOTE = "command:remote:Command"
NODES = ("worker-1", "worker-2.example.org")


@pytest.fixture(scope="module")
def run(test_ca, ssh_key) -> Run:
    from tests.conftest import base_config

    raw = base_config(test_ca, ssh_key)
    result = run_program(raw)
    assert result.error is None, result.error
    result.raw = raw  # type: ignore[attr-defined]
    result.ca_and_key = (test_ca, ssh_key)  # type: ignore[attr-defined]
    return result


def _stdin(run: Run, node: str) -> str:
    return run.named(f"{node}-install").inputs["stdin"]


def _tokens(run: Run) -> dict[str, tuple[str, str]]:
    """node -> (token id, token secret), as each node's NodeMembership resource holds them (outputs:
    its provider makes the token)."""
    return {
        r.inputs["node"]: (r.outputs["tokenId"], r.outputs["tokenSecret"])
        for r in run.of_type(DYNAMIC)
        if r.name.endswith("-membership")
    }


def test_cluster_role_bindings(run):
    bindings = {r.inputs["metadata"]["name"]: r.inputs for r in run.of_type(CRB)}
    expected = {
        "k8s-workers:kubelet-bootstrap": ("system:node-bootstrapper", "Group", "system:bootstrappers:k8s-workers"),
        "k8s-workers:node-autoapprove-bootstrap": (
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient", "Group", "system:bootstrappers:k8s-workers"),
        "k8s-workers:node-autoapprove-certificate-rotation": (
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", "Group", "system:nodes"),
        "k8s-workers:apiserver-kubelet-api-admin": ("system:kubelet-api-admin", "User", "kube-apiserver-kubelet-client"),
    }  # fmt: skip  # no node-proxier: every RBAC cluster binds it by default (manageKubeProxyRbac adds ours)
    assert set(bindings) == set(expected)
    for name, (role, kind, subject) in expected.items():
        assert bindings[name]["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": role,
        }
        assert bindings[name]["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": subject}]
    everything = json.dumps([r.inputs for r in run.resources])
    assert "selfnodeserver" not in everything


def test_each_node_has_a_bootstrap_token_whose_secret_stays_secret(run):
    tokens = _tokens(run)
    assert set(tokens) == set(NODES)
    for node, (token_id, token_secret) in tokens.items():
        resource = run.named(f"{node}-membership")
        assert re.fullmatch(r"[a-z0-9]{6}", token_id) and re.fullmatch(r"[a-z0-9]{16}", token_secret)
        assert resource.id == f"membership-{node}"  # nothing of the token
        assert {"tokenSecret", "kubeconfig"} <= set(resource.additional_secret_outputs)
        assert resource.plain["outputs"]["tokenId"] == token_id  # the id names the Secret: plain by design
        assert token_secret not in json.dumps(resource.plain)
        assert resource.inputs["ttlHours"] == 24 and resource.inputs["tokenGeneration"] == 1
        assert resource.inputs.get("tokenSecret") is None  # made by the provider, never an input
    assert len({t for t, _ in tokens.values()}) == len(NODES)


def test_the_bootstrap_token_provider_creates_the_secret_the_apiserver_reads(run, monkeypatch):
    """What the provider sends when the engine creates it (the API call replaced by a recorder)."""
    import time

    from components import membership
    from k8s_workers import cluster_api

    sent: list[dict] = []
    monkeypatch.setattr(cluster_api, "api_client", lambda kubeconfig=None: "api")
    monkeypatch.setattr(cluster_api, "create_bootstrap_token", lambda api, manifest: sent.append(manifest))
    checked: list[tuple[str, str]] = []
    monkeypatch.setattr(cluster_api, "refuse_if_claimed", lambda api, node, owner: checked.append((node, owner)))
    before = int(time.time())
    for node in NODES:
        props = dict(run.named(f"{node}-membership").inputs)
        created = membership._Provider().create(props)
        secret = sent[-1]
        data = secret["stringData"]
        assert created.id == f"membership-{node}"
        assert re.fullmatch(r"[a-z0-9]{6}", created.outs["tokenId"]) and re.fullmatch(
            r"[a-z0-9]{16}", created.outs["tokenSecret"]
        )
        assert secret["metadata"]["name"] == f"bootstrap-token-{created.outs['tokenId']}"
        assert secret["type"] == "bootstrap.kubernetes.io/token"
        assert secret["metadata"]["namespace"] == "kube-system"
        assert secret["metadata"]["annotations"]["k8s-workers/node"] == node
        # The stack that declares the node, checked before the token exists (ownership across a fleet)
        assert secret["metadata"]["annotations"]["k8s-workers/owner"] == "k8s-workers/test"
        assert checked[-1] == (node, "k8s-workers/test")
        assert (data["token-id"], data["token-secret"]) == (created.outs["tokenId"], created.outs["tokenSecret"])
        assert data["usage-bootstrap-authentication"] == "true"
        assert "usage-bootstrap-signing" not in data  # no cluster-info discovery is used
        expires = datetime.datetime.strptime(data["expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
        assert created.outs["expires_at"] == int(expires.timestamp())
        assert before + 24 * 3600 <= created.outs["expires_at"] <= int(time.time()) + 24 * 3600  # from creation
        for group in data["auth-extra-groups"].split(","):
            assert re.fullmatch(r"system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]", group)
    assert sent[-1]["stringData"]["auth-extra-groups"] == (
        "system:bootstrappers:k8s-workers,system:bootstrappers:worker-2-example-org"
    )


def test_a_new_token_updates_the_membership_and_refresh_keeps_it(run, monkeypatch):
    """Never a replacement: deleting the membership removes the Node from the cluster."""
    from components import membership

    provider = membership._Provider()
    olds = dict(run.named(f"{NODES[0]}-membership").outputs)
    news = dict(run.named(f"{NODES[0]}-membership").inputs)
    assert not provider.diff("x", olds, news).changes
    assert not provider.diff("x", olds, dict(news, ttlHours=1, kubeconfig="other")).changes
    new_token = provider.diff("x", olds, dict(news, tokenGeneration=2))  # asked for on purpose
    assert new_token.changes and new_token.replaces == []
    before_generations = {k: v for k, v in olds.items() if k != "tokenGeneration"}  # state of an earlier version
    assert not provider.diff("x", before_generations, news).changes
    # Refresh asks the provider to read: a revoked token (its Secret gone) is what it expects; the host
    # (asked over SSH in the lab and engine suites, never here) as its install left it changes nothing.
    from k8s_workers import host_check
    from k8s_workers.decisions.host_drift import HostCheck

    asked = []
    monkeypatch.setattr(host_check, "check_host", lambda connection: asked.append(connection) or HostCheck("clean"))
    assert provider.read("x", olds).outs == olds
    assert [(c.node, c.host, c.port, c.user) for c in asked] == [(NODES[0], "192.0.2.11", 22, "root")]


def test_no_token_secret_in_clear_anywhere_in_state(run):
    """What `pulumi stack export` shows without --show-secrets: ids and non-secret values. With
    mocks that return ids as the providers do (a RandomString's id is its result)."""
    secrets = [secret for _, secret in _tokens(run).values()]
    assert len(secrets) == len(NODES)
    for registration in run.resources:
        clear = json.dumps([registration.id, registration.plain])
        for token_secret in secrets:
            assert token_secret not in clear, (registration.type, registration.name)
    assert not [r for r in run.resources if r.type.startswith("random:")]  # the token is the membership's


def test_bootstrap_kubeconfig_carries_the_token_of_the_secret(run, tmp_path):
    for node, (token_id, token_secret) in _tokens(run).items():
        mode, text = placed_files(_stdin(run, node))[PATHS.bootstrap_kubeconfig]
        assert mode == "0600"
        kubeconfig = yaml.safe_load(text)
        assert kubeconfig["users"][0]["user"]["token"] == f"{token_id}.{token_secret}"


def _kubeconfig_cert(text: str) -> tuple[x509.Certificate, object, x509.Certificate]:
    import base64

    kc = yaml.safe_load(text)
    user = kc["users"][0]["user"]
    cert = x509.load_pem_x509_certificate(base64.b64decode(user["client-certificate-data"]))
    key = serialization.load_pem_private_key(base64.b64decode(user["client-key-data"]), password=None)
    ca = x509.load_pem_x509_certificate(base64.b64decode(kc["clusters"][0]["cluster"]["certificate-authority-data"]))
    return cert, key, ca


def test_kube_proxy_certificate_chains_to_the_cluster_ca(run, test_ca):
    cluster_ca = x509.load_pem_x509_certificate(test_ca.cert_pem.encode())
    for node in NODES:
        mode, text = placed_files(_stdin(run, node))[PATHS.kube_proxy_kubeconfig]
        assert mode == "0600"
        cert, key, ca = _kubeconfig_cert(text)
        assert ca == cluster_ca
        cert.verify_directly_issued_by(cluster_ca)
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:kube-proxy"
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
        fmt = serialization.PublicFormat.SubjectPublicKeyInfo
        enc = serialization.Encoding.DER
        assert cert.public_key().public_bytes(enc, fmt) == key.public_key().public_bytes(enc, fmt)  # type: ignore[attr-defined]
        hours = (cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds() / 3600
        assert hours == 8760


def test_one_kube_proxy_identity_for_every_node(run):
    """Every kube-proxy is `system:kube-proxy`: one P-256 key and certificate per stack, not per node."""
    (key,) = run.of_type("tls:index/privateKey:PrivateKey")
    assert key.inputs["algorithm"] == "ECDSA"
    assert key.inputs["ecdsaCurve"] == "P256"
    assert len(run.of_type("tls:index/locallySignedCert:LocallySignedCert")) == 1
    certs = {_kubeconfig_cert(placed_files(_stdin(run, n))[PATHS.kube_proxy_kubeconfig][1])[0] for n in NODES}
    assert len(certs) == 1


def test_without_a_ca_key_the_cluster_issues_kube_proxys_certificate(test_ca, ssh_key):
    """The default: no CA key in config or state; kube-proxy's request goes to the cluster's CSR
    API (components/kube_proxy_certificate.py) and every node gets the certificate it returns."""
    from tests.conftest import base_config

    raw = base_config(test_ca, ssh_key)
    raw.pop("caKey")
    result = run_program(raw)
    assert result.error is None, result.error
    assert result.of_type("tls:index/locallySignedCert:LocallySignedCert") == []
    issued = result.named("kube-proxy-cert")
    assert issued.type == DYNAMIC
    assert issued.inputs["requestPem"] == result.named("kube-proxy-csr").outputs["certRequestPem"]
    assert (issued.inputs["validityHours"], issued.inputs["earlyRenewalHours"]) == (8760, 720)
    assert issued.inputs["owner"] == "k8s-workers/test"
    placed = [_kubeconfig_cert(placed_files(_stdin(result, n))[PATHS.kube_proxy_kubeconfig][1])[0] for n in NODES]
    assert {c.public_bytes(serialization.Encoding.PEM).decode() for c in placed} == {issued.outputs["certPem"]}
    key = test_ca.key_pem.splitlines()[1]
    assert not any(key in json.dumps(r.inputs) or key in json.dumps(r.outputs) for r in result.resources)


def test_every_credential_input_is_secret(run):
    for node in NODES:
        install = run.named(f"{node}-install")
        assert "stdin" in install.secret_inputs
        assert "connection" in install.secret_inputs or "connection.privateKey" in install.secret_inputs
        assert install.inputs["logging"] == "none"
        assert {"stdout", "stderr"} <= set(install.additional_secret_outputs)
        assert "tokenSecret" in run.named(f"{node}-membership").additional_secret_outputs  # made there, kept secret
    assert "privateKeyPem" in run.named("kube-proxy-csr").secret_inputs
    assert "caPrivateKeyPem" in run.named("kube-proxy-cert").secret_inputs


def test_no_secret_in_command_lines(run, test_ca, ssh_key):
    secrets = [test_ca.key_pem.splitlines()[1], ssh_key.splitlines()[1]]
    secrets += [secret for _, secret in _tokens(run).values()]
    secrets += [k.outputs["privateKeyPem"].splitlines()[1] for k in run.of_type("tls:index/privateKey:PrivateKey")]
    for install in run.of_type(REMOTE):
        assert "create" not in install.secret_inputs and "delete" not in install.secret_inputs
        for text in (install.inputs["create"], install.inputs["delete"]):
            for secret in secrets:
                assert secret not in text


def test_connection_is_bounded_and_pinned(run, ssh_key):
    from tests.conftest import HOST_KEYS

    for node, address, host_key in zip(NODES, ("192.0.2.11", "192.0.2.12"), HOST_KEYS, strict=True):
        connection = run.named(f"{node}-install").inputs["connection"]
        assert connection["host"] == address
        assert connection["port"] == 22
        assert connection["user"] == "root"
        assert connection["hostKey"] == host_key
        assert connection["dialErrorLimit"] == 3
        assert connection["perDialTimeout"] == 10
        assert connection["privateKey"] == ssh_key


def test_install_waits_for_its_token_and_replaces_cleanly(run):
    for node in NODES:
        install = run.named(f"{node}-install")
        assert install.delete_before_replace
        assert any(d.endswith(f"::{node}-membership") for d in install.dependencies)


def test_the_rendered_manifest_matches_the_placed_files(run, tmp_path):
    """`make render`'s per-node manifest (what reviewers read in the pull request's artifact) lists
    exactly what the install places, with its mode and hash."""
    render_stack(load_config(run.raw, require_secrets=False), tmp_path)  # type: ignore[attr-defined]
    for node in NODES:
        install = run.named(f"{node}-install")
        manifest = {}
        for line in (tmp_path / "manifests" / f"{node}.txt").read_text().splitlines():
            kind, path, *rest = line.split(" ")
            if kind == "file":
                manifest[path] = rest
        placed = placed_files(install.inputs["stdin"])
        assert set(manifest) == set(placed)
        for path, (mode, content) in placed.items():
            assert manifest[path][0] == mode
            if path in (PATHS.bootstrap_kubeconfig, PATHS.kube_proxy_kubeconfig):
                assert manifest[path][1] == "secret-on-stdin"
            else:
                assert manifest[path][1] == f"sha256:{sha256_text(content)}"
        assert install.inputs["create"].startswith("/bin/bash -c ")
        # The removal script is one of the placed files; the command only runs it.
        assert install.inputs["delete"].startswith("/bin/bash -s <<'K8S_WORKERS_REMOVE'")
        assert f'exec /bin/bash "${{K8SW_ROOT:-}}{PATHS.removal_script}"' in install.inputs["delete"]
        assert len(install.inputs["delete"]) < 1000


def test_component_and_stack_outputs_stay_small(run):
    """A node's outputs are its name, address and what the policy pack checks; the stack's are a
    count and each node's address: no per-node file list in state or in every run's output."""
    outputs = [o for urn, o in run.component_outputs.items() if "WorkerNode" in urn]
    by_name = {o["name"]: o for o in outputs}
    assert set(by_name) == set(NODES)
    for out in by_name.values():
        # what the policy pack checks on the node (no secrets: the whole run has none in clear)
        assert set(out) == {"name", "address", "insecureIgnoreHostKey", "kubeletConfiguration", "kubeletArgs"}
    assert by_name["worker-1"]["address"] == "192.0.2.11"
    assert run.stack_outputs == {
        "nodeCount": len(NODES),
        "nodes": {"worker-1": "192.0.2.11", "worker-2.example.org": "192.0.2.12"},
    }


def test_render_equals_what_the_components_place(run, tmp_path):
    config = load_config(run.raw, require_secrets=False)  # type: ignore[attr-defined]
    render_stack(config, tmp_path)
    tokens = _tokens(run)
    for node in config.nodes:
        placed = placed_files(_stdin(run, node.name))
        secret_paths = {PATHS.bootstrap_kubeconfig, PATHS.kube_proxy_kubeconfig}
        for path, (mode, content) in placed.items():
            rendered = tmp_path / node.name / path.lstrip("/")
            assert oct(rendered.stat().st_mode & 0o777) == oct(int(mode, 8))
            if path not in secret_paths:
                assert rendered.read_text() == content, path
        # Secret files: the same function, fed the values the mocks produced, gives the same bytes.
        cert = run.named("kube-proxy-cert").outputs["certPem"]
        key = run.named("kube-proxy-key").outputs["privateKeyPem"]
        token = ".".join(tokens[node.name])
        again = {f.path: f.content for f in node_files(config.cluster, node, NodeSecrets(token, cert, key))}
        for path in secret_paths:
            assert again[path] == placed[path][1]
        assert set(placed) == {f.path for f in plan_node(config.cluster, node, NodeSecrets(token, cert, key)).files}


def test_kubeconfigs_load_in_kubectl(run, tmp_path):
    for node in NODES:
        placed = placed_files(_stdin(run, node))
        for path in (PATHS.bootstrap_kubeconfig, PATHS.kube_proxy_kubeconfig):
            target = tmp_path / f"{node}-{Path(path).name}"
            target.write_text(placed[path][1])
            result = subprocess.run(
                ["kubectl", "config", "view", "--kubeconfig", str(target), "--raw", "-o", "json"],
                capture_output=True, text=True, check=False, timeout=60,
            )  # fmt: skip
            assert result.returncode == 0, result.stderr
            view = json.loads(result.stdout)
            assert view["clusters"][0]["cluster"]["server"] == "https://192.0.2.1:6443"
            assert view["current-context"]


def test_removing_a_node_from_config_removes_its_resources(test_ca, ssh_key):
    from tests.conftest import base_config

    raw = base_config(test_ca, ssh_key)
    raw["nodes"] = raw["nodes"][:1]
    result = run_program(raw)
    assert result.error is None
    assert [r.name for r in result.of_type(REMOTE)] == ["worker-1-install"]
    # What the engine runs when the node disappears: the delete command kept in state runs the
    # removal script the install placed (one of its files, on stdin).
    full = run_program(base_config(test_ca, ssh_key))
    delete = full.named("worker-2.example.org-install").inputs["delete"]
    assert PATHS.removal_script in delete and "'worker-2.example.org'" in delete
    removal = placed_files(_stdin(full, "worker-2.example.org"))[PATHS.removal_script]
    assert removal[0] == "0700"
    assert "systemctl disable --now" in removal[1]
    assert "remove '/var/lib/kubelet/config.yaml'" in removal[1]


def test_host_key_check_is_off_only_when_asked(test_ca, ssh_key):
    from tests.conftest import base_config

    raw = base_config(test_ca, ssh_key)
    raw["nodes"][0]["ssh"] = {"insecureIgnoreHostKey": True}
    result = run_program(raw)
    assert result.error is None, result.error
    assert "hostKey" not in result.named("worker-1-install").inputs["connection"]


def test_each_node_registers_after_its_install(run):
    registrations = {r.name: r for r in run.of_type(DYNAMIC) if r.name.endswith("-registration")}
    assert set(registrations) == {f"{n}-registration" for n in NODES}
    for node in NODES:
        registration = registrations[f"{node}-registration"]
        assert registration.inputs["node"] == node
        assert registration.inputs["approveServing"] is True
        address = {"worker-1": "192.0.2.11", "worker-2.example.org": "192.0.2.12"}[node]
        assert registration.inputs["address"] == address  # its own only: linear in nodes
        # It revokes the node's tokens once joined; the generation (known at preview) re-runs it on a re-issue.
        assert registration.inputs["tokenGeneration"] == 1 and "tokenId" not in registration.inputs
        assert any(d.endswith(f"::{node}-install") for d in registration.dependencies)
    assert registrations["worker-1-registration"].inputs["labels"] == {"node.kubernetes.io/pool": "general"}
    assert registrations["worker-2.example.org-registration"].inputs["taints"] == [
        {"key": "dedicated", "value": "batch", "effect": "NoSchedule"}
    ]
    assert all(r.inputs["addPreviousOutputInEnv"] is False for r in run.of_type(REMOTE))


def test_labels_and_taints_are_not_in_any_host_file(run):
    """A label or taint change is a Node patch: no file on the host, so no restart."""
    for node in NODES:
        placed = placed_files(_stdin(run, node))
        everything = "\n".join(content for _, content in placed.values())
        assert "node.kubernetes.io/pool" not in everything and "dedicated" not in everything
        config = yaml.safe_load(placed[PATHS.kubelet_config][1])
        assert config["registerWithTaints"] == [{"key": "k8s-workers/uninitialized", "effect": "NoSchedule"}]


@pytest.mark.parametrize(("mode", "bootstrap"), [("manual", True), ("self-signed", False)])
def test_serving_certificate_modes(test_ca, ssh_key, mode, bootstrap):
    from tests.conftest import base_config

    result = run_program(base_config(test_ca, ssh_key, servingCertificates=mode))
    assert result.error is None, result.error
    registrations = [r for r in result.of_type(DYNAMIC) if r.name.endswith("-registration")]
    assert len(registrations) == len(NODES)  # labels, taints and the token still need it
    assert all(r.inputs["approveServing"] is False for r in registrations)
    placed = placed_files(_stdin(result, NODES[0]))
    assert yaml.safe_load(placed[PATHS.kubelet_config][1])["serverTLSBootstrap"] is bootstrap


def test_nodes_depend_on_the_bindings_not_the_component(run):
    """`pulumi up --target <node>` works: a dependency on the component would expand to all its children."""
    bindings = {r.name for r in run.of_type(CRB)}
    workers = [r for r in run.resources if r.type == "k8s-workers:index:WorkerNode"]
    assert workers
    for worker in workers:
        names = {d.rsplit("::", 1)[1] for d in worker.dependencies}
        assert names == bindings, names


def test_the_install_command_line_is_the_same_for_every_change_and_the_membership_names_the_setting(test_ca, ssh_key):
    """A one-setting change shows per node as the setting (an input of the membership) and the
    install's stdin; the command line carries no file list (`make render` writes it)."""
    from tests.conftest import base_config

    config = base_config(test_ca, ssh_key)
    config["defaults"]["kubelet"] = {"imageGCHighThresholdPercent": 83}
    preview = run_program(config, preview=True)
    assert preview.error is None, preview.error
    for install in preview.of_type(REMOTE):
        create = install.inputs.get("create")
        assert isinstance(create, str) and create.startswith("/bin/bash -c "), create
        assert "sha256" not in create and "# file" not in create, create
    memberships = [r for r in preview.of_type(DYNAMIC) if r.name.endswith("-membership")]
    assert memberships
    for membership in memberships:
        assert membership.inputs["kubelet.imageGCHighThresholdPercent"] == 83, membership.inputs
        assert membership.inputs["kubelet.maxPods"] in (50, 110), membership.inputs  # a node setting, by its key


def _named(run: Run, suffix: str) -> dict[str, object]:
    return {r.name.removesuffix(suffix): r for r in run.of_type(DYNAMIC) if r.name.endswith(suffix)}


def test_a_rolling_change_goes_batch_by_batch(run):
    """maxUnavailable 1 (the default): worker-2's membership (where a change's drain happens) waits
    for worker-1's registration (Ready, uncordoned); the install waits for its own membership."""
    disruptions, registrations = _named(run, "-membership"), _named(run, "-registration")
    first, second = NODES
    assert disruptions[first].inputs["batch"] == 1 and disruptions[second].inputs["batch"] == 2
    # The program declares batch 2's membership only once batch 1's registration is done (the
    # engine answers a registration when the resource is done): no dependency chain the SDK
    # would walk for cycles (components/sequencing.py).
    from tests.conftest import base_config

    slow = run_program(base_config(*run.ca_and_key), slow=(f"{first}-registration",))  # type: ignore[attr-defined]
    order = [r.name for r in slow.resources]  # as they finished
    assert order.index(f"{second}-membership") > order.index(f"{first}-registration")
    assert order.index(second) < order.index(f"{first}-registration")  # its component does not wait
    assert not any(d.endswith("-registration") for r in disruptions.values() for d in r.dependencies)
    for node in NODES:
        assert any(d.endswith(f"::{node}-membership") for d in run.named(f"{node}-install").dependencies)
        services = disruptions[node].inputs["services"]
        assert {"containerd", "kubelet", "kube-proxy"} <= set(services)
        # A restart updates the registration too (it uncordons): by one digest, one line in a diff.
        assert registrations[node].inputs["services"] == services_digest(services)
        drain = "--ignore-daemonsets=true --delete-emptydir-data=true --force=false --timeout=300s"
        assert disruptions[node].inputs["drain"] == registrations[node].inputs["drain"] == drain


def test_nodes_the_cluster_does_not_have_yet_join_together_without_waiting(test_ca, ssh_key, monkeypatch):
    """A first `up` fans out: worker-2 is not in the cluster, so it waits for no one (its batch, 2, is
    its place in config order); worker-1 (already a node, nothing recorded) is in batch 1."""
    from k8s_workers import cluster_api
    from tests.conftest import base_config

    monkeypatch.setattr(cluster_api, "api_client", lambda kubeconfig=None: object())
    monkeypatch.setattr(cluster_api, "registered", lambda api, nodes: ("v1.37.2", {"worker-1": _registered()}))
    monkeypatch.setattr(cluster_api, "claimed_nodes", lambda api, **_: {"worker-1": {"k8s-workers/test"}})
    result = run_program(base_config(test_ca, ssh_key), slow=("worker-1-registration",))
    assert result.error is None, result.error
    disruptions = _named(result, "-membership")
    assert disruptions["worker-1"].inputs["batch"] == 1 and disruptions["worker-2.example.org"].inputs["batch"] == 2
    order = [r.name for r in result.resources]  # as they finished
    assert order.index("worker-2.example.org-install") < order.index("worker-1-registration")


def _registered(version: str = "v1.37.2", services: dict[str, str] | None = None):
    from k8s_workers.cluster_api import Registered

    return Registered(version, services)


def test_joined_nodes_whose_recorded_services_are_unchanged_wait_for_no_batch(test_ca, ssh_key, monkeypatch):
    """A no-op `up` of joined nodes: each Node records the services its last `up` left (the
    registration's annotation); when they are what this run installs, the node's membership waits
    for no other node's registration. Its batch stays what config order makes it (no input moves)."""
    from k8s_workers import cluster_api
    from k8s_workers.config.loader import load_config
    from k8s_workers.decisions.rollout import service_digests, services_digest
    from k8s_workers.scripts.install_plan import review_plan
    from tests.conftest import base_config

    raw = base_config(test_ca, ssh_key)
    config = load_config(raw)
    now = {n.name: services_digest(service_digests(review_plan(config.cluster, n, config.nodes))) for n in config.nodes}
    stale = "0" * 16
    found = {
        "worker-1": _registered(services=stale),
        "worker-2.example.org": _registered(services=now["worker-2.example.org"]),
    }
    monkeypatch.setattr(cluster_api, "api_client", lambda kubeconfig=None: "api")
    monkeypatch.setattr(cluster_api, "registered", lambda api, nodes: ("v1.37.2", found))
    monkeypatch.setattr(cluster_api, "claimed_nodes", lambda api, **_: {})
    result = run_program(raw, slow=("worker-1-registration",))
    assert result.error is None, result.error
    batches = {name: r.inputs["batch"] for name, r in _named(result, "-membership").items()}
    assert batches == {"worker-1": 1, "worker-2.example.org": 2}
    order = [r.name for r in result.resources]  # as they finished: worker-2 did not wait for worker-1
    assert order.index("worker-2.example.org-membership") < order.index("worker-1-registration")
    found["worker-1"] = _registered(services=now["worker-1"])  # both in step
    found["worker-2.example.org"] = _registered(services=stale)  # worker-2 restarts: it waits for batch 1
    result = run_program(raw, slow=("worker-1-registration",))
    order = [r.name for r in result.resources]
    assert order.index("worker-2.example.org-membership") > order.index("worker-1-registration")


def test_a_batch_number_alone_is_no_change():
    """A node that joined in batch 0 is in batch k on the next up: nothing to do, the re-run plans nothing."""
    from components.membership import _Provider

    olds = {
        "node": "n",
        "tokenId": "a",
        "tokenSecret": "b",
        "batch": 0,
        "services": {"kubelet": "x"},
        "drain": True,
        "drainOptions": {},
        "repairedGeneration": 0,
    }
    assert _Provider().diff("id", olds, {**olds, "batch": 3}).changes is False
    assert _Provider().diff("id", olds, {**olds, "batch": 3, "services": {"kubelet": "y"}}).changes is True


def test_max_unavailable_as_a_percentage_puts_nodes_in_one_batch(test_ca, ssh_key):
    from tests.conftest import base_config

    raw = base_config(test_ca, ssh_key)
    raw["cluster"]["rollout"] = {"maxUnavailable": "100%"}
    result = run_program(raw)
    assert result.error is None, result.error
    disruptions = _named(result, "-membership")
    assert {d.inputs["batch"] for d in disruptions.values()} == {1}
    assert not any(dep.endswith("-registration") for d in disruptions.values() for dep in d.dependencies)


def test_a_host_gone_for_good_gets_no_ssh_and_no_drain(test_ca, ssh_key):
    from tests.conftest import base_config

    raw = base_config(test_ca, ssh_key)
    raw["nodes"][0]["hostGone"] = True
    result = run_program(raw)
    assert result.error is None, result.error
    gone, kept = result.named("worker-1-install"), result.named("worker-2.example.org-install")
    assert gone.retain_on_delete and "create" in gone.ignore_changes and "stdin" in gone.ignore_changes
    assert not kept.retain_on_delete and kept.ignore_changes == []
    assert _named(result, "-registration")["worker-1"].inputs["hostGone"] is True
    assert _named(result, "-membership")["worker-1"].inputs["drain"] == ""  # not drained


def test_a_version_the_skew_policy_forbids_is_refused_before_any_resource(test_ca, ssh_key, monkeypatch):
    from k8s_workers import cluster_api
    from tests.conftest import base_config

    raw = base_config(test_ca, ssh_key)
    monkeypatch.setattr(cluster_api, "registered", lambda api, nodes: ("v1.36.4", {}))
    monkeypatch.setattr(cluster_api, "claimed_nodes", lambda api, **_: {})
    monkeypatch.setattr(cluster_api, "api_client", lambda kubeconfig=None: "api")
    result = run_program(raw)
    assert "cluster.kubernetesVersion" in str(result.error) and "newer than the apiserver" in str(result.error)
    assert result.resources == []
    monkeypatch.setattr(cluster_api, "registered", lambda api, nodes: ("v1.37.9", {"worker-1": _registered("v1.37.9")}))
    result = run_program(raw)
    assert "node worker-1 runs kubelet v1.37.9" in str(result.error) and "allowDowngrade" in str(result.error)
    raw["cluster"]["rollout"] = {"allowDowngrade": True}
    assert run_program(raw).error is None


def test_a_node_another_stack_owns_is_refused_before_any_resource_naming_that_stack(test_ca, ssh_key, monkeypatch):
    from k8s_workers import cluster_api
    from tests.conftest import base_config

    monkeypatch.setattr(cluster_api, "api_client", lambda kubeconfig=None: "api")
    monkeypatch.setattr(cluster_api, "registered", lambda api, nodes: ("v1.37.2", {"worker-1": _registered()}))
    claimed = {"worker-1": {"k8s-workers/test"}, "worker-2.example.org": {"k8s-workers/pool-b"}, "x": {"k8s-workers/c"}}
    monkeypatch.setattr(cluster_api, "claimed_nodes", lambda api, **_: claimed)
    result = run_program(base_config(test_ca, ssh_key))
    assert result.resources == []
    (line,) = str(result.error).splitlines()
    assert line.startswith("nodes[1].name: Node 'worker-2.example.org' belongs to the stack 'k8s-workers/pool-b'"), line
    claimed["worker-2.example.org"] = {"k8s-workers/test"}  # ours (this stack is test): taken as ours
    assert run_program(base_config(test_ca, ssh_key)).error is None


def test_a_registration_of_a_host_gone_for_good_only_revokes_its_token(monkeypatch):
    """Its Node may be gone already: no approval, no label patch (which would fail on a missing Node)."""
    from components import node_registration
    from k8s_workers import cluster_api

    calls: list[str] = []
    monkeypatch.setattr(cluster_api, "api_client", lambda kubeconfig=None: "api")
    monkeypatch.setattr(cluster_api, "revoke_node_bootstrap_tokens", lambda api, node: calls.append(f"revoke {node}"))
    for name in ("approve_serving_certificates", "reconcile_node_metadata", "uncordon_if_ours"):
        monkeypatch.setattr(cluster_api, name, lambda *a, name=name, **k: calls.append(name))
    props = {"node": "n1", "tokenGeneration": 1, "hostGone": True, "approveServing": True, "labels": {}, "taints": []}
    node_registration.register(props)
    assert calls == ["revoke n1"]
    calls.clear()
    node_registration.retire(props)  # removal: no drain of a node whose pods cannot stop
    assert calls == []


def test_a_membership_update_drains_without_a_new_token_and_issues_a_token_without_a_drain(monkeypatch):
    """One resource does both before the install: a restart's drain keeps the token; a new token
    revokes the old one and drains nothing by itself."""
    from components import membership
    from k8s_workers import cluster_api

    calls: list[tuple[str, ...]] = []
    monkeypatch.setattr(membership, "issue", lambda p: calls.append(("issue", p["tokenId"])) or {**p, "expires_at": 9})
    monkeypatch.setattr(
        membership, "prepare",
        lambda olds, news, repairs=None: calls.append(("prepare",)) or {**news, "restarts": ["kubelet"], "drained": True},
    )  # fmt: skip
    monkeypatch.setattr(cluster_api, "api_client", lambda kubeconfig=None: None)
    monkeypatch.setattr(cluster_api, "revoke_bootstrap_token", lambda api, token_id: calls.append(("revoke", token_id)))
    inputs = {"node": "n", "tokenGeneration": 1, "ttlHours": 24, "kubeconfig": None, "batch": 1,
              "services": {"kubelet": "x"}, "drain": True, "drainOptions": {}}  # fmt: skip
    olds = {**inputs, "tokenId": "old", "tokenSecret": "s", "expires_at": 1, "restarts": [], "drained": False}

    restarted = membership._Provider().update("id", olds, {**inputs, "services": {"kubelet": "y"}}).outs
    assert calls == [("prepare",)]
    assert restarted["expires_at"] == 1 and restarted["tokenId"] == "old" and restarted["drained"] is True

    calls.clear()
    reissued = membership._Provider().update("id", olds, {**inputs, "tokenGeneration": 2}).outs
    new_id = reissued["tokenId"]
    assert calls == [("issue", new_id), ("revoke", "old"), ("prepare",)]
    assert new_id != "old" and reissued["tokenSecret"] != "s" and reissued["expires_at"] == 9


def test_a_preview_declares_every_batch_without_waiting(test_ca, ssh_key):
    """A preview runs nothing: batch 2's membership is declared before batch 1's registration is
    done (without a cluster every node is its own batch, and waiting chained the whole fleet)."""
    from tests.conftest import base_config

    first, second = NODES
    preview = run_program(base_config(test_ca, ssh_key), preview=True, slow=(f"{first}-registration",))
    assert preview.error is None, preview.error
    order = [r.name for r in preview.resources]  # as they finished
    assert order.index(f"{second}-membership") < order.index(f"{first}-registration")
    assert _named(preview, "-membership")[second].inputs["batch"] == 2


def test_a_registration_records_the_nodes_services_last_and_plans_an_update_when_the_record_differs(monkeypatch):
    """The record is what the next `up`'s batching reads: written after the uncordon (an `up` stopped
    before it leaves the node batched next time), and a Node without it (joined before records
    existed) gets it on the next `up`."""
    from components import node_registration
    from k8s_workers import cluster_api

    calls: list[object] = []
    node = {"metadata": {"name": "n1", "annotations": {}}}
    monkeypatch.setattr(cluster_api, "api_client", lambda kubeconfig=None: "api")
    for name in ("reconcile_node_metadata", "revoke_node_bootstrap_tokens", "uncordon_if_ours"):
        monkeypatch.setattr(cluster_api, name, lambda *a, name=name, **k: calls.append(name))
    monkeypatch.setattr(cluster_api, "annotate_node", lambda api, n, annotations: calls.append(annotations))
    props = {"node": "n1", "labels": {}, "taints": [], "services": "0123abcd", "owner": "p/s"}
    node_registration.register(props)
    assert calls[-1] == {"k8s-workers/services": "0123abcd", "k8s-workers/owner": "p/s"}
    assert calls[:-1] == ["reconcile_node_metadata", "revoke_node_bootstrap_tokens", "uncordon_if_ours"]

    monkeypatch.setattr(cluster_api, "node_metadata_drift", lambda found, declared: False)
    monkeypatch.setattr(cluster_api, "node_bootstrap_tokens", lambda api, n: [])
    monkeypatch.setattr(cluster_api, "cordoned_by_us", lambda found: False)
    monkeypatch.setattr(cluster_api, "read_node", lambda api, n: node)
    assert node_registration.drift(props) == ["services"]  # nothing recorded yet
    node["metadata"]["annotations"] = {"k8s-workers/services": calls[-1]["k8s-workers/services"]}
    assert node_registration.drift(props) == []
    assert node_registration.drift({**props, "services": "4567cdef"}) == ["services"]
    assert node_registration.drift({**props, "hostGone": True, "services": ""}) == []


def test_the_drift_check_leaves_a_host_gone_for_good_alone_and_follows_a_new_connection(monkeypatch):
    from components import membership
    from k8s_workers import host_check

    monkeypatch.setattr(host_check, "check_host", lambda connection: pytest.fail("a gone host was asked"))
    gone = {"node": "n", "ssh": None, "repairedGeneration": 0}
    assert membership._Provider().read("x", gone).outs == gone
    ssh = {"host": "192.0.2.11", "port": 22, "user": "root", "hostKey": "ssh-ed25519 AAAA1", "insecure": False}
    olds = {"node": "n", "services": {}, "drain": "", "repairedGeneration": 0, "ssh": ssh, "sshPrivateKey": "k"}
    assert not membership._Provider().diff("x", olds, olds).changes
    rekeyed = {**olds, "ssh": {**ssh, "hostKey": "ssh-ed25519 AAAA2"}}
    assert membership._Provider().diff("x", olds, rekeyed).changes  # the next update records it
