"""Nodes from inventory files (`inventory`): read in order after inline nodes, errors that name
file, entry and key path (nothing registered), and a stack config that stays small at 1000 nodes."""

from __future__ import annotations

import json
from pathlib import Path

import pulumi
import pytest
import yaml

from tests.conftest import base_config
from tests.harness import config_values, run_program

MAX_ARG_STRLEN = 128 * 1024  # Linux's cap on one environment string: the engine's PULUMI_CONFIG


def _write(path: Path, nodes: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"nodes": nodes}, sort_keys=False))


def _node(i: int) -> dict:
    # ssh.insecureIgnoreHostKey: these tests are about where nodes come from, not host keys
    return {
        "name": f"w-{i}",
        "address": f"192.0.2.{i}",
        "podCidr": f"10.244.{i}.0/24",
        "ssh": {"insecureIgnoreHostKey": True},
    }


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)  # inventory paths are relative to the project, where Pulumi runs the program
    return tmp_path


def _error_lines(run) -> list[str]:
    assert isinstance(run.error, pulumi.RunError), run.error
    assert run.resources == [], "resources were registered before the config was checked"
    return [line.strip().removeprefix("- ") for line in str(run.error).splitlines()[1:]]


def test_nodes_come_from_inline_then_files_in_name_order(project, test_ca, ssh_key):
    raw = base_config(test_ca, ssh_key)
    _write(project / "inventory" / "b-rack.yaml", [_node(30)])
    _write(project / "inventory" / "a-rack" / "one.yml", [_node(20), _node(21)])
    (project / "inventory" / "README.txt").write_text("not read")
    raw["inventory"] = "inventory"
    run = run_program(raw)
    assert run.error is None, run.error
    installs = [r.name for r in run.of_type("command:remote:Command")]
    assert installs == [f"{n}-install" for n in ("worker-1", "worker-2.example.org", "w-20", "w-21", "w-30")]


def test_a_list_of_inventory_files_and_defaults_apply_to_their_nodes(project, test_ca, ssh_key):
    raw = base_config(test_ca, ssh_key)
    raw["nodes"] = []
    _write(project / "a.yaml", [_node(20)])
    _write(project / "b.yaml", [{**_node(21), "maxPods": 40}])
    raw["inventory"] = ["a.yaml", "b.yaml"]
    run = run_program(raw)
    assert run.error is None, run.error
    facts = {urn.rsplit("::", 1)[1]: o for urn, o in run.component_outputs.items() if "WorkerNode" in urn}
    assert facts["w-20"]["kubeletConfiguration"]["maxPods"] == 110
    assert facts["w-21"]["kubeletConfiguration"]["maxPods"] == 40
    registration = run.named("w-20-registration")
    assert registration.inputs["labels"] == {"node.kubernetes.io/pool": "general"}  # from defaults


@pytest.mark.parametrize(
    ("files", "inventory", "expected"),
    [
        ({"inv/a.yaml": [_node(20), {**_node(21), "address": "10.0.0.300"}]}, "inv", "inv/a.yaml: nodes[1].address: "),
        ({"inv/a.yaml": [_node(20)], "inv/b.yaml": [{**_node(22), "name": "w-20"}]}, "inv", "inv/b.yaml: nodes[0].name: 'w-20' duplicates inv/a.yaml: nodes[0]"),
        ({"inv/a.yaml": [{**_node(20), "kubelet": {"maxPods": "sixty"}}]}, "inv", "inv/a.yaml: nodes[0].kubelet.maxPods: "),
        ({}, "missing", "inventory: missing: no such file or directory"),
        ({"inv/a.yaml": [_node(20)]}, ["inv/a.yaml", "nope.yaml"], "inventory[1]: nope.yaml: no such file or directory"),
        ({"empty/x.txt": None}, "empty", "inventory: empty: no .yaml or .yml file in this directory"),
        ({"inv/a.yaml": "- name: [unclosed\n"}, "inv", "inv/a.yaml: line 2, column 1: "),
        ({"inv/a.yaml": [_node(20)], "inv/list.yaml": "- name: w-1\n"}, "inv", "inv/list.yaml: must be a mapping with one key, nodes"),
        ({"inv/a.yaml": "nodes: [1]\nclusters: {}\n"}, "inv", "inv/a.yaml: must be a mapping with one key, nodes (a list of nodes); found unknown keys ['clusters']"),
        ({}, {"path": "inv"}, "inventory: must be a path or a list of paths"),
    ],
)  # fmt: skip
def test_an_inventory_error_names_file_entry_and_key(project, test_ca, ssh_key, files, inventory, expected):
    for name, content in files.items():
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content if isinstance(content, str) else yaml.safe_dump({"nodes": content}) if content else "x")
    raw = base_config(test_ca, ssh_key)
    raw["inventory"] = inventory
    lines = _error_lines(run_program(raw))
    assert any(line.startswith(expected) for line in lines), "\n".join(lines)


def test_inline_node_errors_keep_their_paths_next_to_an_inventory(project, test_ca, ssh_key):
    raw = base_config(test_ca, ssh_key)
    raw["nodes"][1]["address"] = "not-an-ip"
    _write(project / "inv.yaml", [_node(20)])
    raw["inventory"] = "inv.yaml"
    assert any(line.startswith("nodes[1].address: ") for line in _error_lines(run_program(raw)))


def _engine_config_size(raw: dict) -> int:
    """The size of PULUMI_CONFIG, the one environment string the engine hands the program."""
    return len(json.dumps(config_values(raw)).encode())


def test_a_1000_node_inventory_keeps_the_engines_config_far_under_the_linux_limit(project, test_ca, ssh_key):
    raw = base_config(test_ca, ssh_key)
    nodes = [{**_node(i), "address": f"10.1.{i // 250}.{i % 250 + 1}", "podCidr": f"172.{16 + i // 256}.{i % 256}.0/24", "ssh": {"hostKey": raw["nodes"][0]["ssh"]["hostKey"]}} for i in range(1000)]  # fmt: skip
    raw["cluster"]["podCidr"] = "172.16.0.0/12"
    inline = {**raw, "nodes": nodes}
    for rack in range(10):
        _write(project / "inventory" / f"rack-{rack:02}.yaml", nodes[rack * 100 : rack * 100 + 100])
    from_files = {**raw, "nodes": [], "inventory": "inventory"}

    assert _engine_config_size(inline) > MAX_ARG_STRLEN  # what fails today at ~650 nodes
    assert _engine_config_size(from_files) < MAX_ARG_STRLEN / 16
    from k8s_workers.config.loader import load_config

    config = load_config(from_files)
    assert len(config.nodes) == 1000 and config.nodes[999].name == "w-999"
