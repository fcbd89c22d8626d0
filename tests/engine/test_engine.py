"""The program under the real Pulumi engine with no cluster and no host reachable (marker `engine`),
as in a pull-request preview. Run where `pulumi` and the pinned provider plugins are on PATH
(`.ci/run` installs them): `venv/bin/python -m pytest -m engine tests/engine`. The lab's engine
tests are in test_engine_lab.py."""

from __future__ import annotations

import pytest
import yaml

from tests.engine.pulumi_cli import REMOTE_COMMAND, ROOT, Project, missing, no_leak

pytestmark = pytest.mark.engine

if (why := missing()) is not None:
    pytest.skip(f"ENGINE TESTS SKIPPED: {why}", allow_module_level=True)


# ---------------------------------------------------------------- no cluster, no hosts
def _dev_stack(tmp_path, test_ca, ssh_key) -> tuple[Project, dict]:
    """The dev stack as committed, with a CA whose key this test holds (the example CA's key is discarded)."""
    document = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    document["config"]["k8s-workers:cluster"]["caCert"] = test_ca.cert_pem
    stack_file = tmp_path / "Pulumi.dev.yaml"
    stack_file.write_text(yaml.safe_dump(document, sort_keys=False))
    project = Project(tmp_path, "dev", stack_file, kubeconfig=None)
    project.set_secret("caKey", test_ca.key_pem)
    project.set_secret("sshPrivateKey", ssh_key)
    return project, document


def test_dev_stack_previews_with_no_cluster_and_no_host_reachable(tmp_path, test_ca, ssh_key):
    project, document = _dev_stack(tmp_path, test_ca, ssh_key)

    result = project.preview()
    assert result.returncode == 0, result.output
    nodes = [n["name"] for n in document["config"]["k8s-workers:nodes"]]
    installs = [urn for op, urn in result.ops(REMOTE_COMMAND) if op == "create"]
    assert sorted(urn.rsplit("::", 1)[1] for urn in installs) == sorted(f"{n}-install" for n in nodes)
    assert "the cluster was not reachable" in result.output and "`pulumi up` needs the cluster" in result.output
    no_leak(result.output, "the preview's output")


def test_the_policy_pack_stops_a_preview_whose_ssh_connections_accept_any_host_key(tmp_path, test_ca, ssh_key):
    """The config refuses a node without a host key, so what the pack guards against is a program
    change that drops it (here: the install's connection built without `host_key`) while no node
    waives it; the engine runs the pack on the preview and fails it with the policy's message."""
    project, document = _dev_stack(tmp_path, test_ca, ssh_key)
    component = project.dir / "components" / "worker_node.py"
    pinned = "host_key=None if node.ssh.insecure_ignore_host_key else node.ssh.host_key,"
    assert pinned in component.read_text()
    component.write_text(component.read_text().replace(pinned, "host_key=None,"))

    result = project.preview()
    assert result.returncode != 0, result.output
    for node in document["config"]["k8s-workers:nodes"]:
        assert f"{node['name']}-install: the SSH connection to {node['address']} accepts any host key" in result.output
    assert "ssh-host-key-pinned" in result.output and "mandatory" in result.output.lower()
    no_leak(result.output, "the preview's output")


def test_the_policy_pack_sees_each_nodes_kubelet_settings_through_its_worker_node(tmp_path, test_ca, ssh_key):
    """The kubelet settings reach the pack as the WorkerNode component's outputs (not its inputs: that
    copy went, it printed 80 lines per node in every diff). The config refuses an insecure setting, so
    the test makes the program declare one (the read-only port) and the engine's preview must fail."""
    project, document = _dev_stack(tmp_path, test_ca, ssh_key)
    component = project.dir / "components" / "worker_node.py"
    registered = 'self.register_outputs({"name": self.name, "address": self.address, **facts})'
    assert registered in component.read_text()
    insecure = 'facts["kubeletConfiguration"]["readOnlyPort"] = 10255\n        ' + registered
    component.write_text(component.read_text().replace(registered, insecure))

    result = project.preview()
    assert result.returncode != 0, result.output
    for node in document["config"]["k8s-workers:nodes"]:
        assert f"node {node['name']}: CIS 4.2.4: the unauthenticated read-only port must be off" in result.output
