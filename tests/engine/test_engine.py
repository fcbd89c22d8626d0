"""The program under the real Pulumi engine (marker `engine`). Run where `pulumi` and the four
provider plugins are on PATH: `venv/bin/python -m pytest -m engine tests/engine`. The lab tests
also need the lab up (`python -m lab up`, as root). Short and plain on purpose: others run these
before anyone here has seen them pass (the CLI cannot be installed on the machine they were
written on)."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.engine.pulumi_cli import ROOT, Project, missing

pytestmark = pytest.mark.engine

if (why := missing()) is not None:
    pytest.skip(f"ENGINE TESTS SKIPPED: {why}", allow_module_level=True)

REMOTE_COMMAND = "command:remote:Command"
# What must never appear in clear: a bootstrap token (id.secret), a private key, a kubeconfig credential.
LEAKS = re.compile(r"\b[a-z0-9]{6}\.[a-z0-9]{16}\b|PRIVATE KEY-----|client-key-data|\btoken: [^\s<]")


def _no_leak(text: str, what: str) -> None:
    found = LEAKS.search(text)
    assert found is None, (
        f"{what} holds a secret in clear near: {text[max(0, found.start() - 80) : found.end() + 20]!r}"
    )


# ---------------------------------------------------------------- no cluster, no hosts
def test_dev_stack_previews_with_no_cluster_and_no_host_reachable(tmp_path, test_ca, ssh_key):
    # The dev stack as committed, with a CA whose key this test holds (the example CA's key is discarded).
    document = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    document["config"]["k8s-workers:cluster"]["caCert"] = test_ca.cert_pem
    stack_file = tmp_path / "Pulumi.dev.yaml"
    stack_file.write_text(yaml.safe_dump(document, sort_keys=False))
    project = Project(tmp_path, "dev", stack_file, kubeconfig=None)
    project.set_secret("caKey", test_ca.key_pem)
    project.set_secret("sshPrivateKey", ssh_key)

    result = project.preview()
    assert result.returncode == 0, result.output
    nodes = [n["name"] for n in document["config"]["k8s-workers:nodes"]]
    installs = [urn for op, urn in result.ops(REMOTE_COMMAND) if op == "create"]
    assert sorted(urn.rsplit("::", 1)[1] for urn in installs) == sorted(f"{n}-install" for n in nodes)
    assert "cluster.kubernetesVersion: not checked against the cluster" in result.output
    _no_leak(result.output, "the preview's output")


# ---------------------------------------------------------------- the lab
@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    from lab import cluster
    from lab.paths import ADMIN_KUBECONFIG
    from lab.stack import STACK_FILE

    if not STACK_FILE.exists() or not ADMIN_KUBECONFIG.exists():
        pytest.skip("the lab is not up (`python -m lab up` as root writes Pulumi.lab.yaml)")
    project = Project(tmp_path_factory.mktemp("engine-lab"), "lab", STACK_FILE, kubeconfig=str(ADMIN_KUBECONFIG))
    first = project.up()
    yield project, first, cluster
    project.run("destroy", "--yes", "--skip-preview")


def _node_names(project: Project) -> list[str]:
    document = yaml.safe_load((project.dir / "Pulumi.lab.yaml").read_text())
    return [n["name"] for n in document["config"]["k8s-workers:nodes"]]


def test_up_makes_every_node_ready(lab):
    project, first, cluster = lab
    assert first.returncode == 0, first.output
    nodes = cluster.nodes()
    for name in _node_names(project):
        assert cluster.conditions(nodes[name])["Ready"] == "True", name
    _no_leak(first.output, "the engine's output")


def test_a_second_up_changes_nothing_and_runs_no_remote_command(lab):
    project, _, _ = lab
    again = project.up()
    assert again.returncode == 0, again.output
    assert set(again.changes()) == {"same"}, again.changes()
    assert [op for op, _ in again.ops(REMOTE_COMMAND) if op != "same"] == []


def test_one_kubelet_setting_updates_one_install(lab):
    project, _, _ = lab
    stack_file = project.dir / "Pulumi.lab.yaml"
    document = yaml.safe_load(stack_file.read_text())
    node = document["config"]["k8s-workers:nodes"][0]
    node["kubelet"] = {"imageGCHighThresholdPercent": 84}
    stack_file.write_text(yaml.safe_dump(document, sort_keys=False))
    result = project.up()
    assert result.returncode == 0, result.output
    updated = [urn for op, urn in result.ops(REMOTE_COMMAND) if op != "same"]
    assert [urn.rsplit("::", 1)[1] for urn in updated] == [f"{node['name']}-install"], result.ops(REMOTE_COMMAND)
    assert {op for op, _ in result.ops(REMOTE_COMMAND) if op != "same"} == {"update"}


def test_a_node_removed_from_the_config_is_removed(lab):
    project, _, cluster = lab
    stack_file = project.dir / "Pulumi.lab.yaml"
    document = yaml.safe_load(stack_file.read_text())
    gone = document["config"]["k8s-workers:nodes"].pop()["name"]
    stack_file.write_text(yaml.safe_dump(document, sort_keys=False))
    result = project.up()
    assert result.returncode == 0, result.output
    assert ("delete", next(u for _, u in result.ops(REMOTE_COMMAND) if u.endswith(f"::{gone}-install"))) in result.ops(
        REMOTE_COMMAND
    )
    assert gone not in cluster.nodes()


def test_state_holds_no_secret_in_clear(lab):
    project, _, _ = lab
    _no_leak(project.export(), "`pulumi stack export`")


def test_destroy_leaves_hosts_and_cluster_clean(lab):
    project, _, cluster = lab
    names = _node_names(project)
    result = project.run("destroy", "--yes", "--skip-preview")
    assert result.returncode == 0, result.output
    assert not set(names) & set(cluster.nodes())
    from lab import remote
    from lab.state import load

    for host in load().hosts:
        if host.name in names:
            left = remote.shell(host, "ls /etc/kubernetes /var/lib/kubelet 2>/dev/null | head -n 5 || true")
            assert left.strip() == "", (host.name, left)
