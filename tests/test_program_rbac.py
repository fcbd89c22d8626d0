"""The program's own RBAC (k8s_workers/render/program_rbac.py): what the repository ships is what the
module renders, valid for every supported Kubernetes release, and no wider than docs/security.md says.
The lab runs the engine suite under these identities (tests/engine/test_engine_lab.py)."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from components.__main__ import main
from k8s_workers.render.program_rbac import DEPLOYER, PREVIEWER, program_rbac, rbac_table

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "rbac" / "program-rbac.yaml"


def _rules(kind: str, name: str) -> list[dict]:
    (found,) = [m for m in program_rbac() if m["kind"] == kind and m["metadata"]["name"] == name]
    return found["rules"]


def test_the_shipped_yaml_is_what_the_command_renders(capsys):
    assert main(["rbac"]) == 0
    assert capsys.readouterr().out == SHIPPED.read_text(), (
        "run: venv/bin/python -m components rbac > rbac/program-rbac.yaml"
    )
    assert list(yaml.safe_load_all(SHIPPED.read_text())) == program_rbac()


@pytest.mark.parametrize("version", ["1.34.0", "1.35.0", "1.36.0", "1.37.0"])
def test_every_manifest_is_valid(version):
    for manifest in program_rbac():
        kubernetes_validate.validate(manifest, version, strict=True)


def test_the_up_identity_holds_no_secret_outside_kube_system_and_creates_no_pod():
    cluster_wide = _rules("ClusterRole", DEPLOYER)
    assert not [r for r in cluster_wide if "secrets" in r["resources"]]
    assert [r["verbs"] for r in cluster_wide if "pods" in r["resources"]] == [["list"]]
    assert [r["verbs"] for r in cluster_wide if "pods/eviction" in r["resources"]] == [["create"]]
    (signers,) = [r for r in cluster_wide if r["resources"] == ["signers"]]
    assert signers["verbs"] == ["approve"]
    assert signers["resourceNames"] == ["kubernetes.io/kube-apiserver-client", "kubernetes.io/kubelet-serving"]
    (bind,) = [r for r in cluster_wide if "bind" in r["verbs"]]
    assert bind["resources"] == ["clusterroles"] and "cluster-admin" not in bind["resourceNames"]
    assert not [r for r in cluster_wide if "*" in r["verbs"] or "*" in r["resources"] or "escalate" in r["verbs"]]
    (role,) = [m for m in program_rbac() if m["kind"] == "Role"]
    assert role["metadata"]["namespace"] == "kube-system" and role["rules"][0]["resources"] == ["secrets"]


def test_the_preview_identity_only_reads_and_reads_no_secret():
    for rule in _rules("ClusterRole", PREVIEWER):
        assert set(rule["verbs"]) <= {"get", "list", "watch"}, rule
        assert "secrets" not in rule["resources"], rule


def test_subjects_are_a_group_or_a_user():
    bindings = [m for m in program_rbac("user:ci-deployer", "group:reviewers") if m["kind"].endswith("Binding")]
    assert {(b["roleRef"]["name"], b["subjects"][0]["kind"], b["subjects"][0]["name"]) for b in bindings} == {
        (DEPLOYER, "User", "ci-deployer"),
        (PREVIEWER, "Group", "reviewers"),
    }
    with pytest.raises(ValueError, match="group:<name>"):
        program_rbac("ci-deployer")


def test_the_documented_table_is_the_rules():
    page = (ROOT / "docs" / "security.md").read_text()
    missing = [line for line in rbac_table() if line not in page]
    assert not missing, "docs/security.md's RBAC table differs from k8s_workers/render/program_rbac.py: " + "\n".join(
        missing
    )


def test_a_stack_with_program_rbac_declares_exactly_the_shipped_objects(test_ca, ssh_key):
    from tests.conftest import base_config
    from tests.harness import run_program

    raw = base_config(test_ca, ssh_key)
    raw["cluster"]["programRbac"] = {"deployer": "user:ci-deployer"}
    result = run_program(raw)
    assert result.error is None, result.error
    declared = {
        (r.type.rsplit(":", 1)[-1], r.inputs["metadata"]["name"]): {k: v for k, v in r.inputs.items() if k not in ("apiVersion", "kind")}
        for r in result.resources
        if r.type.startswith("kubernetes:rbac.authorization.k8s.io/v1:") and r.name.startswith("program-")
    }  # fmt: skip
    wanted = {(m["kind"], m["metadata"]["name"]): {k: v for k, v in m.items() if k not in ("apiVersion", "kind")}
              for m in program_rbac("user:ci-deployer")}  # fmt: skip
    assert declared == wanted


def test_without_program_rbac_the_stack_declares_none(test_ca, ssh_key):
    from tests.conftest import base_config
    from tests.harness import run_program

    result = run_program(base_config(test_ca, ssh_key))
    assert result.error is None and result.resources, result.error
    assert not [r for r in result.resources if r.name.startswith("program-")]


def test_a_malformed_subject_is_a_config_error_naming_its_key(test_ca, ssh_key):
    from k8s_workers.config.loader import ConfigError, load_config
    from tests.conftest import base_config

    raw = base_config(test_ca, ssh_key)
    raw["cluster"]["programRbac"] = {"previewer": "reviewers"}
    with pytest.raises(ConfigError, match=r"cluster\.programRbac\.previewer"):
        load_config(raw)
