"""The comment's summary from a preview's steps (both JSON forms the engine writes); the engine
test on the lab summarizes a real preview (tests/engine/test_engine_lab.py)."""

from __future__ import annotations

import json
from typing import Any

from components.__main__ import main
from k8s_workers.decisions.preview_summary import COMMENT_LIMIT, comment, condensed, steps_from, summarize

URN = "urn:pulumi:prod::k8s-workers::k8s-workers:index:WorkerNode$pulumi-python:dynamic:Resource::"


def _membership(node: str, batch: int, kubelet: str = "a", containerd: str = "c", drain: bool = True) -> dict[str, Any]:
    return {
        "node": node,
        "batch": batch,
        "drain": drain,
        "services": {"kubelet": kubelet, "containerd": containerd, "kube-proxy": "p"},
    }


def _json_document(steps: list[tuple[str, str, dict[str, Any], dict[str, Any]]]) -> str:
    return json.dumps({"steps": [
        {"op": op, "urn": URN + name, "oldState": {"inputs": old}, "newState": {"inputs": new}} for op, name, old, new in steps
    ], "changeSummary": {}})  # fmt: skip


def _event_log(steps: list[tuple[str, str, dict[str, Any], dict[str, Any]]]) -> str:
    events = [{"preludeEvent": {}}]
    events += [{"resourcePreEvent": {"metadata": {"op": op, "urn": URN + name, "old": {"inputs": old}, "new": {"inputs": new}}}}
               for op, name, old, new in steps]  # fmt: skip
    return "\n".join(json.dumps(e) for e in events)


def _kubelet_change_on(nodes: int) -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    steps = []
    for i in range(nodes):
        name = f"node-{i:03d}"
        steps.append(
            (
                "update",
                f"{name}-membership",
                _membership(name, i // 10 + 1),
                _membership(name, i // 10 + 1, kubelet="b"),
            )
        )
        steps.append(("update", f"{name}-install", {}, {}))
        steps.append(("update", f"{name}-registration", {}, {}))
    steps.append(("same", "kube-proxy-cert", {}, {}))
    steps.append(("update", "default", {}, {}))  # the dynamic providers' default provider (config)
    return steps


def test_a_kubelet_change_on_100_nodes_reads_as_one_line_with_its_batches():
    for render in (_json_document, _event_log):
        lines = summarize(steps_from(render(_kubelet_change_on(100)))).lines("prod")
        assert lines[0] == "**prod**: 100 nodes restart a service."
        row, blank, order = lines[4:]
        assert row.startswith("| kubelet restart | 100: node-000, node-001, ") and "and 92 more" in row, row
        assert "| 10 batches of 10 (batch 1–10) | yes |" in row, row
        # When each node restarts: the per-node diff shows what, not when.
        assert blank == "" and order.startswith("Batches, in order: 1: node-000, ") and " · 10: node-090, " in order
        assert order.count(" · ") == 9 and order.count("and 2 more") == 10, order


def test_the_batch_order_of_a_large_rollout_is_cut_and_counted():
    steps = [("update", f"n{i}-membership", _membership(f"n{i}", i + 1), _membership(f"n{i}", i + 1, kubelet="b"))
             for i in range(250)]  # fmt: skip
    order = summarize(steps_from(_json_document(steps))).lines("prod")[-1]
    assert order.startswith("Batches, in order: 1: n0 · 2: n1 · ") and order.endswith(" · 40: n39 · and 210 more"), (
        order
    )
    assert len(order) < 1000


def test_joins_leaves_and_cluster_side_changes_are_told_apart():
    steps = [
        ("create", "new-1-membership", {}, _membership("new-1", 0)),
        ("delete", "old-1-membership", _membership("old-1", 2), {}),
        ("update", "lab-1-membership", _membership("lab-1", 1), _membership("lab-1", 1, containerd="d")),
        ("update", "lab-2-membership", _membership("lab-2", 2, drain=False), _membership("lab-2", 2, kubelet="x", drain=False)),
        ("update", "lab-3-registration", {"labels": {}}, {"labels": {"a": "b"}}),
        ("create", "k8s-workers-kubelet-bootstrap", {}, {}),
    ]  # fmt: skip
    lines = summarize(steps_from(_json_document(steps))).lines("lab")
    table = "\n".join(lines)
    assert "| containerd restart | 1: lab-1 | 1 batch of 1 (batch 1–1) | yes |" in table, table
    assert "| kubelet restart | 1: lab-2 | 1 batch of 1 (batch 2–2) | no |" in table, table
    assert "| join | 1: new-1 | – | – |" in table, table
    assert "| leave (drained, removed) | 1: old-1 | – | yes |" in table, table
    assert "| labels, taints or token (no restart) | 1: lab-3 | – | – |" in table, table
    assert "| create: k8s-workers-kubelet-bootstrap | – | – | – |" in table, table


def test_no_change_is_one_line():
    assert summarize(steps_from(_event_log([("same", "a-membership", {}, {})]))).lines("dev") == ["**dev**: no change."]


def test_the_command_prints_the_summary(tmp_path, capsys):
    path = tmp_path / "preview.json"
    path.write_text(_json_document(_kubelet_change_on(3)))
    assert main(["summary", "--stack", "lab", str(path)]) == 0
    assert capsys.readouterr().out.startswith("**lab**: 3 nodes restart a service.\n")


def test_the_comment_puts_the_summary_first_and_cuts_the_diff_to_the_limit(tmp_path, capsys):
    events, diff = tmp_path / "events.jsonl", tmp_path / "preview.txt"
    events.write_text(_event_log(_kubelet_change_on(250)))
    text = "\n".join(f"    ~ kubelet : {i:05d} => changed" for i in range(20_000))
    diff.write_text(text)
    assert main(["summary", "--stack", "prod", str(events), "--diff", str(diff), "--artifact", "preview-prod"]) == 0
    out = capsys.readouterr().out
    assert len(out) <= COMMENT_LIMIT
    assert out.startswith("<!-- k8s-workers preview: prod -->\n**prod**: 250 nodes restart a service.")
    shown = int(out.rsplit("Cut at ", 1)[1].split(" ")[0])
    assert 1000 < shown < 20_000 and "of 20000 lines" in out and "artifact `preview-prod`" in out
    assert out.count("~ kubelet : ") == shown  # whole lines only
    small = comment("dev", ["**dev**: no change."], "Resources:\n    3 unchanged\n", "preview-dev")
    assert "Cut at" not in small and "3 unchanged" in small


PREVIEW = """Previewing update (lab):
  pulumi:pulumi:Stack: (same)
    [urn=urn:pulumi:lab::k8s-workers::pulumi:pulumi:Stack::k8s-workers-lab]
    ~ pulumi-python:dynamic:Resource: (update)
        [id=membership-lab-1]
        [urn=urn:pulumi:lab::k8s-workers::k8s-workers:index:WorkerNode$pulumi-python:dynamic:Resource::lab-1-membership]
      ~ kubelet.maxPods: 110 => 77
    ~ command:remote:Command: (update)
        [id=lab-1-install0357e584]
        [urn=urn:pulumi:lab::k8s-workers::k8s-workers:index:WorkerNode$command:remote:Command::lab-1-install]
        [provider=urn:pulumi:lab::k8s-workers::pulumi:providers:command::default_1_2_1::bd04e159]
      ~ stdin: [secret] => [secret]
      + labels: [secret]
Resources:
    ~ 2 to update
"""


def test_the_comment_names_each_resource_on_one_line_instead_of_its_type_id_urn_and_provider():
    assert (
        condensed(PREVIEW)
        == """Previewing update (lab):
  k8s-workers-lab: (same)
    ~ lab-1-membership: (update)
      ~ kubelet.maxPods: 110 => 77
    ~ lab-1-install: (update)
      ~ stdin: [secret] => [secret]
      + labels: [secret]
Resources:
    ~ 2 to update
"""
    )
    assert "~ lab-1-install: (update)" in comment("lab", ["**lab**"], PREVIEW, "preview-lab")
