"""The GitHub workflows (.github/): checked by actionlint, built from its Go module (the PyPI wrapper
downloads from GitHub), and read for the properties a reviewer relies on."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
ACTIONLINT = "github.com/rhysd/actionlint/cmd/actionlint@v1.7.12"
TOOLS = Path(os.environ.get("K8SW_TOOLS", "/var/cache/k8s-workers/tools"))
STACK_SECRETS = {"CA_KEY", "SSH_PRIVATE_KEY", "KUBECONFIG"}
BACKEND_SECRETS = {"PULUMI_BACKEND_URL", "PULUMI_ACCESS_TOKEN", "PULUMI_CONFIG_PASSPHRASE"}


@pytest.fixture(scope="session")
def actionlint() -> Path:
    binary = TOOLS / "bin" / "actionlint"
    if not binary.exists():
        if shutil.which("go") is None:
            pytest.skip(f"actionlint: Go is needed to build {ACTIONLINT} (.ci/run installs nothing else for it)")
        env = {**os.environ, "GOBIN": str(binary.parent), "CGO_ENABLED": "0"}
        subprocess.run(["go", "install", ACTIONLINT], check=True, env=env, timeout=900)
    return binary


def _load(name: str) -> dict[str, Any]:
    # YAML 1.1 reads the key `on` as True: take it back as the string GitHub means.
    document = yaml.safe_load((WORKFLOWS / name).read_text())
    if True in document:
        document["on"] = document.pop(True)
    return document


def test_actionlint_finds_nothing(actionlint):
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    assert files, "no workflows"
    # shellcheck (on PATH in CI) checks every run: script too.
    result = subprocess.run([str(actionlint), "-no-color", *files], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(actionlint, tmp_path):
    """The check can fail: a workflow with an unknown event and an undefined job output."""
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: pull_requests\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo ${{ needs.b.outputs.x }}\n"
    )
    result = subprocess.run([str(actionlint), "-no-color", str(broken)], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 1, result.stdout
    assert "pull_requests" in result.stdout


def _steps_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in job.get("steps", []) if str(s.get("uses", "")).startswith(action)]


def test_pull_requests_preview_every_stack_with_the_policy_pack_and_one_edited_comment():
    workflow = _load("preview.yml")
    assert set(workflow["on"]) == {"pull_request"}
    jobs = workflow["jobs"]
    assert "pytest" in jobs["test"]["steps"][-1]["run"] and "--ignore=tests/e2e" in jobs["test"]["steps"][-1]["run"]
    preview = jobs["preview"]
    assert preview["strategy"]["matrix"]["stack"] == "${{ fromJSON(needs.stacks.outputs.stacks) }}"
    assert "Pulumi.*.yaml" in jobs["stacks"]["steps"][-1]["run"]
    runs = "\n".join(str(s.get("run", "")) for s in preview["steps"])
    assert "pulumi preview " in runs and "--diff" in runs and "--policy-pack policy" in runs
    assert "--event-log events.jsonl" in runs and (ROOT / "policy" / "PulumiPolicy.yaml").exists()
    # The comment: the summary from the engine's events first, the text below, one comment per stack edited.
    assert "python -m components summary" in runs and "--diff preview.txt" in runs
    (comment,) = _steps_using(preview, "marocchino/sticky-pull-request-comment@")
    assert comment["with"]["path"] == "comment.md" and "matrix.stack" in comment["with"]["header"]
    (artifact,) = _steps_using(preview, "actions/upload-artifact@")
    assert "preview.txt" in artifact["with"]["path"]
    assert workflow["permissions"] == {"contents": "read", "pull-requests": "write"}
    # Safe only where nothing is changed: previews skip the engine's intermediate state writes, `up` never.
    assert preview["env"]["PULUMI_SKIP_CHECKPOINTS"] == "true"
    assert "PULUMI_SKIP_CHECKPOINTS" not in (ROOT / ".github" / "workflows" / "up.yml").read_text()


def test_up_runs_only_when_asked_from_main_in_the_stacks_protected_environment():
    workflow = _load("up.yml")
    assert set(workflow["on"]) == {"workflow_dispatch"}
    assert workflow["on"]["workflow_dispatch"]["inputs"]["stack"]["required"] is True
    (job,) = workflow["jobs"].values()
    assert job["environment"] == "${{ inputs.stack }}"
    assert job["if"] == "github.ref == 'refs/heads/main'"
    (step,) = [s for s in _steps_using(job, "pulumi/actions@") if "with" in s]
    assert step["with"]["command"] == "up" and step["with"]["policyPacks"] == "policy"
    assert workflow["concurrency"]["cancel-in-progress"] is False


def test_a_fleet_up_is_asked_for_from_main_and_runs_the_fleet_command_with_the_policy_pack():
    workflow = _load("fleet-up.yml")
    assert set(workflow["on"]) == {"workflow_dispatch"}
    (job,) = workflow["jobs"].values()
    assert job["environment"] == "fleet" and job["if"] == "github.ref == 'refs/heads/main'"
    runs = [s.get("run", "") for s in job["steps"]]
    assert any(r.startswith("venv/bin/python -m components fleet up -- ") and "--policy-pack policy" in r for r in runs)
    assert workflow["concurrency"]["cancel-in-progress"] is False
    assert "PULUMI_SKIP_CHECKPOINTS" not in (WORKFLOWS / "fleet-up.yml").read_text()


def test_secrets_are_the_ones_the_docs_name_and_never_reach_a_command_line():
    page = (ROOT / "docs" / "pull-requests.md").read_text()
    texts = [p.read_text() for p in (ROOT / ".github").rglob("*.yml")]
    used = {s for t in texts for s in re.findall(r"secrets\.([A-Z_]+)", t)}
    assert used == STACK_SECRETS | BACKEND_SECRETS
    for name in used:
        assert f"`{name}`" in page, name
    for text in texts:
        for line in text.splitlines():
            if "run:" in line or line.strip().startswith(("pulumi ", "printf", "echo")):
                assert "${{ secrets." not in line and "${{ inputs.ca-key" not in line, line
