"""`python -m components render`: review output from a stack file, no CLI, cluster or hosts."""

from __future__ import annotations

import base64
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from components.stack_config import raw_from_stack_file
from k8s_workers.config.loader import load_config
from k8s_workers.render.node_files import PLACEHOLDER_SECRETS
from k8s_workers.scripts.commands import install_command, install_script, removal_command, removal_script
from k8s_workers.scripts.install_plan import plan_node
from tests.conftest import base_config

PROJECT = Path(__file__).resolve().parent.parent


def _render(*args: str, cwd: Path = PROJECT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "components", "render", *args],
        cwd=cwd, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip


def test_dev_stack_renders_on_a_fresh_clone(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(PROJECT), str(clone)], check=True, timeout=120)
    # The working tree may hold uncommitted edits: copy them over so this tests the code under test.
    for sub in ("components", "k8s_workers", "templates"):
        shutil.rmtree(clone / sub, ignore_errors=True)
        shutil.copytree(PROJECT / sub, clone / sub, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PROJECT / "Pulumi.dev.yaml", clone / "Pulumi.dev.yaml")
    out = tmp_path / "out"
    result = _render("--stack", "dev", "--out", str(out), cwd=clone)
    assert result.returncode == 0, result.stderr
    config = load_config(raw_from_stack_file("dev", clone), require_secrets=False)
    assert [n.name for n in config.nodes] == ["worker-1", "worker-2"]
    for node in config.nodes:
        for f in plan_node(config.cluster, node, PLACEHOLDER_SECRETS, config.nodes).files:
            target = out / node.name / f.path.lstrip("/")
            assert target.read_text() == f.content
            assert target.stat().st_mode & 0o777 == int(f.mode, 8)
    cluster = sorted(p.name for p in (out / "cluster").iterdir())
    assert "k8s-workers-kubelet-bootstrap.yaml" in cluster
    assert "bootstrap-token-worker-1.yaml" in cluster
    for path in (out / "cluster").glob("k8s-workers-*.yaml"):
        kubernetes_validate.validate(yaml.safe_load(path.read_text()), "1.37.0", strict=True)
    everything = "\n".join(p.read_text() for p in out.rglob("*") if p.is_file())
    assert "PRIVATE KEY-----" not in everything
    assert "<token-secret>" in everything


def test_render_reports_config_errors_with_key_paths(tmp_path, test_ca):
    raw = base_config(test_ca)
    raw["nodes"][0]["address"] = "10.0.0.300"
    stack = {"config": {f"k8s-workers:{k}": v for k, v in raw.items() if k != "caKey"}}
    stack["config"]["k8s-workers:caKey"] = {"secure": "v1:abc:def"}
    (tmp_path / "Pulumi.bad.yaml").write_text(yaml.safe_dump(stack))
    result = _render("--stack", "bad", "--out", str(tmp_path / "out"), "--project-dir", str(tmp_path))
    assert result.returncode == 2
    assert "nodes[0].address: '10.0.0.300' is not an IP address" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_secure_values_become_placeholders(tmp_path, test_ca):
    raw = base_config(test_ca)
    stack = {"config": {f"k8s-workers:{k}": v for k, v in raw.items() if k != "caKey"}}
    stack["config"]["k8s-workers:caKey"] = {"secure": "v1:abc:def"}
    stack["config"]["k8s-workers:sshPrivateKey"] = {"secure": "v1:ghi:jkl"}
    (tmp_path / "Pulumi.ok.yaml").write_text(yaml.safe_dump(stack))
    result = _render("--stack", "ok", "--out", str(tmp_path / "out"), "--project-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    # Rendered without the passphrase: secrets show as placeholders, ciphertext nowhere.
    kubeconfig = yaml.safe_load((tmp_path / "out/worker-1/var/lib/kube-proxy/kubeconfig.conf").read_text())
    key = base64.b64decode(kubeconfig["users"][0]["user"]["client-key-data"]).decode()
    assert key == "<kube-proxy private key, a Pulumi secret>\n"
    token = yaml.safe_load((tmp_path / "out/worker-1/etc/kubernetes/bootstrap-kubelet.conf").read_text())
    assert token["users"][0]["user"]["token"] == "<token-id>.<token-secret>"
    everything = "".join(p.read_text() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert "v1:abc:def" not in everything and "v1:ghi:jkl" not in everything


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed (.ci/run installs it)")
def test_generated_scripts_pass_shellcheck(tmp_path):
    config = load_config(raw_from_stack_file("dev"), require_secrets=False)
    from k8s_workers.render.node_files import NodeSecrets

    expiring = NodeSecrets("abcdef.0123456789abcdef", "cert\n", "key\n", token_expires_at=1_900_000_000)
    for node, secrets in [(n, s) for n in config.nodes for s in (PLACEHOLDER_SECRETS, expiring)]:
        plan = plan_node(config.cluster, node, secrets, config.nodes)
        suffix = "exp" if secrets.token_expires_at else "plain"
        for name, text in (
            (f"install-{suffix}.sh", install_script(plan)),
            (f"remove-{suffix}.sh", removal_script(plan)),
            # The command lines the SSH sessions start (the login shell runs them as a script).
            (f"install-command-{suffix}.sh", install_command(plan, "root")),
            (f"remove-command-{suffix}.sh", removal_command(plan, "root")),
        ):
            path = tmp_path / f"{node.name}-{name}"
            path.write_text(text)
            result = subprocess.run(
                ["shellcheck", "-s", "bash", str(path)], capture_output=True, text=True, check=False
            )
            assert result.returncode == 0, result.stdout


def test_a_yaml_syntax_error_names_file_line_and_column(tmp_path):
    (tmp_path / "Pulumi.broken.yaml").write_text("config:\n  k8s-workers:cluster:\n    name: [unclosed\n")
    result = subprocess.run(
        [sys.executable, "-m", "components", "render", "--stack", "broken", "--out", str(tmp_path / "out"),
         "--project-dir", str(tmp_path)],
        cwd=PROJECT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.startswith("error: Pulumi.broken.yaml line 4, column 1:"), result.stderr
    assert "Traceback" not in result.stderr
