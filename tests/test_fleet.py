"""A fleet of stacks under mocks: a cluster stack, pool stacks reading it, keys in the wrong stack.
(The engine runs them on the lab in tests/engine/test_engine_lab.py.)"""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml

from components import fleet as fleet_components
from k8s_workers.config.fleet import read_fleet
from k8s_workers.decisions.ownership import claims, conflicts, held_by_others
from k8s_workers.render.host_paths import PATHS
from tests.conftest import base_config
from tests.harness import Run, run_program
from tests.placed import placed_files

CLUSTER_STACK = "organization/k8s-workers/cluster"


def _cluster_stack(test_ca: Any) -> dict[str, Any]:
    raw = base_config(test_ca)
    return {"role": "cluster", "cluster": raw["cluster"], "caKey": raw["caKey"]}


def _pool(test_ca: Any, ssh_key: str) -> dict[str, Any]:
    raw = base_config(test_ca, ssh_key)
    return {
        "role": "pool",
        "clusterStack": CLUSTER_STACK,
        **{k: raw[k] for k in ("nodes", "defaults", "sshPrivateKey")},
    }


def _errors(run: Run) -> list[str]:
    assert run.error is not None
    assert run.resources == [], "resources were registered before the config was checked"
    return [line.strip().removeprefix("- ") for line in str(run.error).splitlines()[1:]]


@pytest.fixture
def cluster_run(test_ca) -> Run:
    run = run_program(_cluster_stack(test_ca))
    assert run.error is None, run.error
    return run


def test_a_cluster_stack_holds_what_is_once_per_cluster_and_exports_it(cluster_run, test_ca):
    types = {r.type for r in cluster_run.resources}
    assert "k8s-workers:index:WorkerNode" not in types
    assert {
        "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding",
        "tls:index/locallySignedCert:LocallySignedCert",
    } <= types
    outputs = cluster_run.stack_outputs
    assert outputs["cluster"] == base_config(test_ca)["cluster"]  # as configured: what pools validate
    assert "BEGIN CERTIFICATE" in outputs["kubeProxyCertPem"] and "PRIVATE KEY" in outputs["kubeProxyKeyPem"]
    assert "nodeCount" not in outputs
    # The guard waits for every other resource, so destroy deletes it first and stops there if pools remain.
    guard = cluster_run.named("fleet-guard")
    waited = {u.rsplit("::", 1)[1] for u in guard.dependencies}
    bindings = {r.name for r in cluster_run.of_type("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding")}
    signed = {r.name for r in cluster_run.resources if r.type.startswith("tls:")}
    assert len(bindings) == 4 and len(signed) == 3 and bindings | signed <= waited, waited
    assert guard.inputs["owner"] == "k8s-workers/test"
    assert cluster_run.secret_outputs == {"kubeProxyKeyPem"}


def test_a_pool_stack_holds_nodes_and_reads_the_cluster_and_kube_proxy_from_the_cluster_stack(
    cluster_run, test_ca, ssh_key
):
    stacks = {CLUSTER_STACK: cluster_run.stack_outputs}
    run = run_program(_pool(test_ca, ssh_key), stacks=stacks)
    assert run.error is None, run.error
    types = [r.type for r in run.resources]
    assert "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding" not in types
    assert not [t for t in types if t.startswith("tls:")]  # no CA key here: nothing is signed
    assert run.stack_outputs["nodeCount"] == 2
    install = run.named("worker-1-install")
    assert "stdin" in install.secret_inputs
    _, text = placed_files(install.inputs["stdin"])[PATHS.kube_proxy_kubeconfig]
    user = yaml.safe_load(text)["users"][0]["user"]  # the cluster stack's kube-proxy identity
    assert base64.b64decode(user["client-certificate-data"]).decode() == cluster_run.stack_outputs["kubeProxyCertPem"]
    assert base64.b64decode(user["client-key-data"]).decode() == cluster_run.stack_outputs["kubeProxyKeyPem"]
    assert run.named("worker-1-membership").inputs["owner"] == "k8s-workers/test"


def test_the_cluster_settings_travel_with_the_ca_inline_and_no_file_path(test_ca, ssh_key, tmp_path):
    """A cluster stack may name its CA files; its pools run elsewhere and must not need them."""
    (tmp_path / "ca.crt").write_text(test_ca.cert_pem)
    (tmp_path / "ca.key").write_text(test_ca.key_pem)
    settings = {k: v for k, v in _cluster_stack(test_ca)["cluster"].items() if k != "caCert"}
    settings |= {"caCertFile": str(tmp_path / "ca.crt"), "caKeyFile": str(tmp_path / "ca.key")}
    cluster = run_program({"role": "cluster", "cluster": settings})
    assert cluster.error is None, cluster.error
    exported = cluster.stack_outputs["cluster"]
    assert exported["caCert"] == test_ca.cert_pem and not {"caCertFile", "caKeyFile"} & set(exported)
    (tmp_path / "ca.key").unlink()  # not on the pool's runner
    (tmp_path / "ca.crt").unlink()
    run = run_program(_pool(test_ca, ssh_key), stacks={CLUSTER_STACK: cluster.stack_outputs})
    assert run.error is None, run.error


def test_a_pool_says_which_stack_a_bad_cluster_setting_belongs_in(cluster_run, test_ca, ssh_key):
    outputs = dict(cluster_run.stack_outputs)
    outputs["cluster"] = {**outputs["cluster"], "clusterDns": "10.244.0.10"}
    errors = _errors(run_program(_pool(test_ca, ssh_key), stacks={CLUSTER_STACK: outputs}))
    assert any(e.startswith(f"cluster.clusterDns (in the cluster stack {CLUSTER_STACK!r}): ") for e in errors), errors


def test_a_pool_whose_cluster_stack_exports_nothing_says_to_run_it_first(test_ca, ssh_key):
    errors = _errors(run_program(_pool(test_ca, ssh_key), stacks={CLUSTER_STACK: {}}))
    assert errors == [f"clusterStack: {CLUSTER_STACK!r} exports no cluster settings: `pulumi up` it first"]


def test_a_pool_whose_cluster_stack_does_not_exist_is_refused_naming_the_key(test_ca, ssh_key):
    run = run_program(_pool(test_ca, ssh_key), stacks={})
    assert run.resources == [] and str(run.error).startswith(f"clusterStack: cannot read the stack {CLUSTER_STACK!r}")


def _moved(raw: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**raw, **changes}


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda ca, key: _moved(_cluster_stack(ca), nodes=base_config(ca)["nodes"]),
         "nodes: belongs in a pool stack (role: pool), not in the cluster stack"),
        (lambda ca, key: _moved(_cluster_stack(ca), sshPrivateKey=key),
         "sshPrivateKey: belongs in a pool stack (role: pool), not in the cluster stack"),
        (lambda ca, key: _moved(_pool(ca, key), caKey=ca.key_pem),
         f"caKey: belongs in the cluster stack {CLUSTER_STACK!r}, not in a pool stack"),
        (lambda ca, key: {k: v for k, v in _pool(ca, key).items() if k != "clusterStack"},
         "clusterStack: is required in a pool stack: the cluster stack it joins"),
        (lambda ca, key: _moved(base_config(ca, key), clusterStack=CLUSTER_STACK),
         "clusterStack: is for pool stacks only (set role: pool)"),
        (lambda ca, key: _moved(base_config(ca, key), role="fleet"),
         "role: 'fleet' is not one of ['standalone', 'cluster', 'pool']"),
        (lambda ca, key: _moved(_pool(ca, key), clusterStack="a b"),
         "clusterStack: 'a b' is not a stack name (organization/project/stack)"),
    ],
    ids=["nodes-in-cluster", "ssh-key-in-cluster", "ca-key-in-pool", "pool-without-cluster-stack",
         "cluster-stack-in-standalone", "unknown-role", "bad-stack-name"],
)  # fmt: skip
def test_a_key_in_the_wrong_stack_names_the_stack_it_belongs_in(test_ca, ssh_key, cluster_run, build, expected):
    run = run_program(build(test_ca, ssh_key), stacks={CLUSTER_STACK: cluster_run.stack_outputs})
    assert expected in _errors(run)


def test_a_pool_with_the_cluster_inline_is_told_where_it_belongs(test_ca, ssh_key, cluster_run):
    raw = {**_pool(test_ca, ssh_key), "cluster": base_config(test_ca)["cluster"]}
    errors = _errors(run_program(raw, stacks={CLUSTER_STACK: cluster_run.stack_outputs}))
    assert f"cluster: belongs in the cluster stack {CLUSTER_STACK!r}, not in a pool stack" in errors


def test_a_standalone_stack_is_todays_single_stack():
    fleet, problems = read_fleet({"cluster": {}, "nodes": []})
    assert (fleet.role, fleet.holds_cluster, fleet.holds_nodes, problems) == ("standalone", True, True, [])


def test_ownership_decisions():
    claimed = claims({"a": "p/pool-1", "b": "p/pool-2"}, {"c": {"p/pool-2"}, "a": {"p/pool-1"}})
    assert conflicts(["a", "b", "c", "d"], "p/pool-1", claimed) == {"b": ["p/pool-2"], "c": ["p/pool-2"]}
    assert held_by_others(claimed, "p/cluster") == {"p/pool-1": ["a"], "p/pool-2": ["b", "c"]}
    assert held_by_others(claimed, "p/pool-2") == {"p/pool-1": ["a"]}


def test_the_cluster_stack_guard_refuses_destroy_while_pools_hold_nodes(monkeypatch):
    from k8s_workers import cluster_api

    monkeypatch.setattr(cluster_api, "api_client", lambda kubeconfig=None: "api")
    monkeypatch.setattr(cluster_api, "claimed_nodes", lambda api, **_: {"n1": {"k8s-workers/pool-a"}})
    with pytest.raises(RuntimeError, match=r"in use by pool stacks \(k8s-workers/pool-a: n1\)"):
        fleet_components._GuardProvider().delete("fleet-guard", {"owner": "k8s-workers/cluster", "kubeconfig": None})
    monkeypatch.setattr(cluster_api, "claimed_nodes", lambda api, **_: {})
    fleet_components._GuardProvider().delete("fleet-guard", {"owner": "k8s-workers/cluster", "kubeconfig": None})
