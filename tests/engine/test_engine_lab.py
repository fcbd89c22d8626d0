"""The program under the real Pulumi engine on the lab (markers `engine`, `lab`): every test is a real
`pulumi` run against the lab's v1.37.2 control plane and its systemd hosts, one stack for the whole
module, the tests in the order a platform team would live it (first `up`, re-runs, a reviewed
change, a rolling change, one node targeted, an interrupted run, an upgrade, a removal, `destroy`).

Each test writes the whole stack config it wants (`Fleet.configure`), so what it checks does not
depend on what an earlier test happened to leave in the config; it does build on the nodes being
there. The lab itself comes from tests/lab_session.py (the same session as the lab suite)."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from k8s_workers.decisions.preview_summary import comment, steps_from, summarize
from lab import cluster, images, pins, remote
from lab.hosts import LabHost
from lab.paths import DEPLOYER_KUBECONFIG, PREVIEWER_KUBECONFIG
from lab.stack import at_kubernetes, stack_document
from lab.state import LabState
from tests.e2e.helpers import (
    NAMESPACE,
    PORT,
    Watch,
    fresh_namespace,
    ready_pods,
    run_deployment,
    run_workload,
    wait_for,
)
from tests.engine.pulumi_cli import DYNAMIC, REMOTE_COMMAND, ROOT, WORKER_NODE, Project, Result, missing, no_leak
from tests.lab_session import RawFactory, clean_slate

pytestmark = [pytest.mark.engine, pytest.mark.lab]

if (why := missing()) is not None:
    pytest.skip(f"ENGINE TESTS SKIPPED: {why}", allow_module_level=True)

UP = ("up", "--yes", "--skip-preview", "--policy-pack", str(ROOT / "policy"))
BOOTSTRAP_TOKEN_TYPE = "bootstrap.kubernetes.io/token"


@dataclass
class Fleet:
    project: Project
    raw: RawFactory
    hosts: list[LabHost]
    first: Result

    @property
    def names(self) -> list[str]:
        return [h.name for h in self.hosts]

    def configure(
        self, edit: Callable[[dict[str, Any]], None] | None = None, kubeconfig: Path = DEPLOYER_KUBECONFIG
    ) -> dict[str, Any]:
        """The stack's whole config: the lab's, changed by `edit`, run as the program's own `up`
        identity (rbac/program-rbac.yaml), not as an admin."""
        raw = self.raw(edit=edit)
        self.project.stack_file.write_text(stack_document(raw, kubeconfig))
        return raw


@pytest.fixture(scope="module")
def fleet(
    lab: LabState, systemd_hosts: list[LabHost], lab_raw: RawFactory, lab_images: list[images.Image], tmp_path_factory
) -> Iterator[Fleet]:
    clean_slate(lab_raw(), systemd_hosts)
    # What a platform team does once, as an admin: the program's RBAC. Every run below is the program's.
    cluster.kubectl("apply", "-f", str(ROOT / "rbac" / "program-rbac.yaml"))
    project = Project(tmp_path_factory.mktemp("engine-lab"), "lab", None, kubeconfig=str(DEPLOYER_KUBECONFIG))
    fleet = Fleet(project, lab_raw, systemd_hosts, first=None)  # type: ignore[arg-type]
    fleet.configure()
    fleet.first = project.run(*UP)
    if fleet.first.returncode == 0:
        for host in systemd_hosts:  # no registry: the workload's images, imported into each node's containerd
            images.load(host, lab_images)
    yield fleet
    # Nothing left if a test stopped half-way. Its workload first: with every node going at once, a
    # budget's pods have nowhere to go and each drain would wait out its timeout.
    cluster.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true", timeout=180)
    project.run("destroy", "--yes", "--skip-preview")


# ---------------------------------------------------------------- what the cluster and hosts show


def _ssh_sessions_since(host: LabHost, epoch: float) -> int:
    """SSH logins the host accepted since `epoch`, this query's own excluded."""
    count = remote.shell(
        host, f"journalctl _COMM=sshd --since @{int(epoch)} -o cat | grep -c '^Accepted publickey' || true"
    )
    return int(count.strip() or 0) - 1


def _bootstrap_tokens() -> list[str]:
    secrets = cluster.get("secrets", "-n", "kube-system", "--field-selector", f"type={BOOTSTRAP_TOKEN_TYPE}")
    return [s["metadata"]["name"] for s in secrets["items"]]


def _pending_csrs() -> list[str]:
    return [c["metadata"]["name"] for c in cluster.get("csr")["items"] if not c.get("status", {}).get("conditions")]


def _all_ready_and_schedulable(names: list[str]) -> None:
    nodes = cluster.nodes()
    for name in names:
        assert cluster.conditions(nodes[name])["Ready"] == "True", name
        assert not nodes[name]["spec"].get("unschedulable"), f"{name} is still cordoned"


def _capacity(pods: int, names: list[str]) -> None:
    # The new capacity comes with the restarted kubelet's first status report (a known limit: docs/how-it-works.md).
    wait_for(
        f"capacity {pods} pods on {names}",
        lambda: all(cluster.nodes()[n]["status"]["capacity"]["pods"] == str(pods) for n in names),
        timeout=60,
    )


def _max_pods(pods: int) -> Callable[[dict[str, Any]], None]:
    return lambda raw: raw["defaults"].update(maxPods=pods)


# ---------------------------------------------------------------- the tests, in order


def test_a_first_up_makes_every_node_ready_and_logs_and_exec_work(fleet: Fleet) -> None:
    first = fleet.first
    assert first.returncode == 0, first.output
    # No CA key in the lab stack: kube-proxy's certificate came from the cluster's CSR API (its
    # request approved, issued by the controller-manager, deleted), and the preview said so.
    assert first.changed(DYNAMIC).get("kube-proxy-cert") == "create", first.changed(DYNAMIC)
    assert "caKey" not in fleet.project.stack_file.read_text()
    assert "kube-proxy's client certificate: issued by the cluster" in first.output, first.output
    assert not [c for c in cluster.get("csr")["items"] if c["metadata"]["name"].startswith("k8s-workers-kube-proxy-")]
    nodes = cluster.nodes()
    for name in fleet.names:
        assert cluster.conditions(nodes[name])["Ready"] == "True", name
        assert nodes[name]["status"]["nodeInfo"]["kubeletVersion"] == pins.KUBERNETES
    assert _pending_csrs() == []
    assert _bootstrap_tokens() == []  # each revoked once its node joined
    run_workload(fleet.names)
    for name in fleet.names:
        pod = f"echo-{name}"
        logs = wait_for(
            f"kubectl logs {pod}", lambda pod=pod: cluster.kubectl("logs", "-n", NAMESPACE, pod, check=False).stdout
        )
        assert f"as pod={pod} node={name}" in logs
        probe = ["/echo", "-get", f"http://127.0.0.1:{PORT}/", "-expect", f"pod={pod}"]
        assert cluster.kubectl("exec", "-n", NAMESPACE, pod, "--", *probe).returncode == 0
    no_leak(first.output, "the first `up`'s output")


def test_a_second_up_plans_nothing_and_opens_no_ssh_session_an_up_with_refresh_one_per_node(fleet: Fleet) -> None:
    started = time.time()
    again = fleet.project.run(*UP)
    assert again.returncode == 0, again.output
    assert set(again.changes()) == {"same"}, again.changes()
    assert again.changed() == {}
    preview = fleet.project.run("preview")
    assert preview.returncode == 0, preview.output
    assert preview.changed() == {}, preview.changed()  # nothing unknown at preview either
    assert {h.name: _ssh_sessions_since(h, started) for h in fleet.hosts} == {n: 0 for n in fleet.names}
    # A refresh reads each host once (the drift check), changes nothing there, and plans nothing.
    time.sleep(1.1)  # the journal is asked from a whole second on: not the counting sessions just above
    started = time.time()
    refreshed = fleet.project.run(*UP, "--refresh")
    assert refreshed.returncode == 0, refreshed.output
    assert refreshed.changed() == {}, refreshed.changed()
    assert set(refreshed.changes()) <= {"same"}, refreshed.changes()
    assert {h.name: _ssh_sessions_since(h, started) for h in fleet.hosts} == {n: 1 for n in fleet.names}


KUBELET_CONFIG = "/var/lib/kubelet/config.yaml"
KUBELET_BINARY = "/usr/local/bin/kubelet"


def _started(host: LabHost, service: str) -> str:
    return remote.shell(host, f"systemctl show {service} -p ActiveEnterTimestampMonotonic --value").strip()


def test_host_drift_is_seen_by_refresh_shown_by_preview_and_repaired_by_up(fleet: Fleet) -> None:
    fresh_namespace()  # the first test's bare pods would block the drain (no controller recreates them)
    fleet.configure()
    one, two, three = fleet.hosts
    remote.shell(one, f"echo '# edited by hand' >> {KUBELET_CONFIG}")
    remote.shell(two, "systemctl disable --now --quiet kube-proxy")
    remote.shell(three, f"cp -p {KUBELET_BINARY} {KUBELET_BINARY}.new && printf x >> {KUBELET_BINARY}.new && "
                        f"mv -f {KUBELET_BINARY}.new {KUBELET_BINARY}")  # fmt: skip
    kubelets = {h.name: _started(h, "kubelet") for h in fleet.hosts}
    refreshed = fleet.project.run("refresh", "--yes", "--skip-preview")
    assert refreshed.returncode == 0, refreshed.output
    preview = fleet.project.run("preview", "--diff")
    assert preview.returncode == 0, preview.output
    shown = {
        one.name: f"drift: {KUBELET_CONFIG} (content)",
        two.name: "drift: kube-proxy (disabled), kube-proxy (inactive)",
        three.name: f"drift: {KUBELET_BINARY} (content)",
    }
    for name, words in shown.items():
        block = preview.output.split(f"::{name}-membership]", 1)[1].split("pulumi-python:dynamic:Resource:", 1)[0]
        assert f'- hostDrift: "{words}"' in block, block
    assert preview.changed(REMOTE_COMMAND) == {f"{n}-install": "update" for n in fleet.names}, preview.changed()

    # The repairs that drain go batch by batch, as any restart does; the Service keeps answering.
    service_ip = run_deployment("web", replicas=3, min_available=2)
    with Watch(service_ip, one) as watch:  # lab-1's kube-proxy is not touched
        repaired = fleet.project.run(*UP)
    assert repaired.returncode == 0, repaired.output
    assert watch.cordoned_max == 1 and watch.cordoned_seen == {one.name, three.name}, watch.cordoned_seen
    assert watch.failures == [], watch.failures
    assert "# edited by hand" not in remote.shell(one, f"cat {KUBELET_CONFIG}")
    assert remote.shell(two, "systemctl is-enabled kube-proxy; systemctl is-active kube-proxy").split() == [
        "enabled",
        "active",
    ]
    sums = {h.name: remote.shell(h, f"sha256sum {KUBELET_BINARY}").split()[0] for h in (one, three)}
    assert sums[one.name] == sums[three.name], sums
    # Only what the drift feeds restarts: the kubelet where its file or binary changed, not on lab-2.
    after = {h.name: _started(h, "kubelet") for h in fleet.hosts}
    assert [n for n in fleet.names if after[n] != kubelets[n]] == [one.name, three.name], (kubelets, after)
    _all_ready_and_schedulable(fleet.names)
    again = fleet.project.run(*UP, "--refresh")
    assert again.returncode == 0, again.output
    assert again.changed() == {}, again.changed()


def test_a_host_that_cannot_be_reached_on_refresh_is_reported_unknown_and_nothing_fails(fleet: Fleet) -> None:
    host = fleet.hosts[-1]
    rule = ["INPUT", "-p", "tcp", "--dport", "22", "-j", "REJECT", "--reject-with", "tcp-reset"]
    init = subprocess.run(["pgrep", "-P", str(host.pid)], capture_output=True, text=True).stdout.split()[0]
    inside = ["nsenter", "-t", init, "-m", "-n", "iptables"]  # the host's own iptables, in its namespaces
    subprocess.run([*inside, "-I", *rule], check=True)
    try:
        assert remote.run(host, "true", timeout=30).returncode == 255  # refused: as a host that is down
        refreshed = fleet.project.run("refresh", "--yes", "--skip-preview")
    finally:
        subprocess.run([*inside, "-D", *rule], check=True)
    assert refreshed.returncode == 0, refreshed.output
    preview = fleet.project.run("preview")
    assert preview.returncode == 0, preview.output
    assert preview.changed() == {}, preview.changed()  # unknown is not drift
    said = f"{host.name}: its host was not checked for drift on the last refresh (unknown: "
    assert said in preview.output and "ConnectionRefusedError" in preview.output, preview.output
    # The next refresh that reaches it clears that.
    assert fleet.project.run("refresh", "--yes", "--skip-preview").returncode == 0
    assert said not in fleet.project.run("preview").output


def _as(kubeconfig: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return cluster.run_kubectl([f"--kubeconfig={kubeconfig}", *args], stdin=stdin)


def test_the_up_identity_reads_no_other_secret_creates_no_pod_and_approves_no_other_signer(fleet: Fleet) -> None:
    assert _as(DEPLOYER_KUBECONFIG, "get", "nodes").returncode == 0  # what it may do, it can
    refused = {
        "Secrets outside kube-system": ("get", "secrets", "-n", "default"),
        "pods": ("run", "intruder", "-n", "default", "--image=registry.k8s.io/pause:3.10", "--restart=Never"),
        "a role it is not given to bind": ("create", "clusterrolebinding", "k8s-workers-test-admin",
                                           "--clusterrole=cluster-admin", "--user=someone"),
    }  # fmt: skip
    for what, args in refused.items():
        result = _as(DEPLOYER_KUBECONFIG, *args)
        assert result.returncode != 0, (what, result.stdout)
        assert "forbidden" in result.stderr.lower(), (what, result.stderr)
    # Approval: only for the two signers it uses (a SelfSubjectAccessReview: the signer names hold a `/`).
    may_approve = {s: _may_approve(s) for s in ("kubernetes.io/kube-apiserver-client", "kubernetes.io/kubelet-serving",
                                                 "kubernetes.io/kube-apiserver-client-kubelet", "example.com/any")}  # fmt: skip
    assert may_approve == {
        "kubernetes.io/kube-apiserver-client": True,
        "kubernetes.io/kubelet-serving": True,
        "kubernetes.io/kube-apiserver-client-kubelet": False,
        "example.com/any": False,
    }, may_approve


def _may_approve(signer: str) -> bool:
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"group": "certificates.k8s.io", "resource": "signers", "verb": "approve",
                                        "name": signer}},
    }  # fmt: skip
    result = cluster.run_kubectl(
        [f"--kubeconfig={DEPLOYER_KUBECONFIG}", "create", "--validate=false", "-o", "json", "-f", "-"],
        stdin=json.dumps(review),
    )
    assert result.returncode == 0, result.stderr
    return bool(json.loads(result.stdout)["status"].get("allowed"))


def test_a_preview_under_the_read_only_identity_plans_no_node_change(fleet: Fleet) -> None:
    fleet.configure(kubeconfig=PREVIEWER_KUBECONFIG)
    reader = copy.copy(fleet.project)
    reader.env = {**fleet.project.env, "KUBECONFIG": str(PREVIEWER_KUBECONFIG)}
    try:
        preview = reader.run("preview", "--policy-pack", str(ROOT / "policy"))
    finally:
        fleet.configure()
    assert preview.returncode == 0, preview.output
    assert "the cluster was not reachable" not in preview.output, preview.output  # it read the Nodes
    changed = {name: op for name, op in preview.changed().items() if not name.startswith("default")}
    assert changed == {}, changed  # the providers' own config (a kubeconfig path) aside
    assert _as(PREVIEWER_KUBECONFIG, "get", "secrets", "-n", "kube-system").returncode != 0


# A one-setting change, `--diff`, per node: each resource's header (3-4 lines), the membership's
# changed setting by name (which says the service it restarts), the install's (secret) stdin, and the
# registration's services digest (it uncordons after the restart). Measured: 13 (41 before the
# detailed diff, 24 with the install's file manifest in its command line).
LINES_PER_NODE = 13


def _node_blocks(output: str, node: str) -> list[str]:
    """The lines of `preview --diff` that show the node's resources (each block opens with `<type>: (<op>)`)."""
    shown: list[str] = []
    block: list[str] = []
    for line in [*output.splitlines(), "Resources:"]:
        if re.match(r"^\s*[~+-]* ?[\w:/-]+: \(\w+\)$", line) or not line.startswith(" "):
            if any(re.search(rf"::{re.escape(node)}-(membership|install|registration)\]$", b) for b in block[:4]):
                shown += block
            block = []
        block.append(line)
    return shown


def test_a_preview_of_a_kubelet_change_shows_each_nodes_kubelet_restart_and_batch(fleet: Fleet) -> None:
    fleet.configure(_max_pods(77))
    preview = fleet.project.run("preview", "--diff", "--policy-pack", str(ROOT / "policy"))
    assert preview.returncode == 0, preview.output
    diffs = preview.diffs()
    per_node = {f"{n}{suffix}" for n in fleet.names for suffix in ("-membership", "-install", "-registration")}
    # Nothing else: not the stack's own (bindings, kube-proxy identity), not the nodes' components. The
    # dynamic providers' default provider carries the stack's config as its inputs (the engine's doing),
    # so it shows the changed setting once per stack.
    assert set(diffs) - per_node == {"default"}, set(diffs) - per_node
    assert diffs["default"] == ["k8s-workers:defaults"], diffs["default"]
    for name in fleet.names:
        assert set(diffs[f"{name}-membership"]) == {"services.kubelet", "kubelet.maxPods"}, diffs
        # The command line is the same; the script on stdin (a secret) is what changes.
        assert diffs[f"{name}-install"] == [], diffs[f"{name}-install"]
        # The registration follows the services (it uncordons after the restart); nothing of the token.
        assert diffs[f"{name}-registration"] == ["services"], diffs[f"{name}-registration"]
        assert name not in diffs  # the WorkerNode: its policy facts are outputs, not a diff of 80 lines
        blocks = "\n".join(_node_blocks(preview.output, name))
        # What changes and what restarts, by name; the digest it explains is not shown too.
        assert re.search(r"^\s+~ kubelet\.maxPods\s*: 110 => 77$", blocks, re.M), blocks
        assert re.search(r"^\s+~ stdin\s*: \[secret\] => \[secret\]$", blocks, re.M), blocks
        assert len(re.findall(r"^\s+~ services\b", blocks, re.M)) == 1, blocks  # the registration's alone
        assert not re.search(r"^\s+~ (create|containerd|kube-proxy|batch|drain|node)\b", blocks, re.M), blocks
    # What a reviewer reads per node: the three resources' blocks (docs/pull-requests.md).
    lines = {name: len(_node_blocks(preview.output, name)) for name in fleet.names}
    assert all(n <= LINES_PER_NODE for n in lines.values()), (lines, preview.output)
    # The pull request comment's summary, from this preview's own events (docs/pull-requests.md).
    summary = summarize(steps_from("\n".join(json.dumps(e) for e in preview.events))).lines("lab")
    assert summary[0] == "**lab**: 3 nodes restart a service.", summary
    assert "| kubelet restart | 3: lab-1, lab-2, lab-3 | 3 batches of 1 (batch 1–3) | yes |" in summary, summary
    assert summary[-1] == "Batches, in order: 1: lab-1 · 2: lab-2 · 3: lab-3", summary  # when, per node
    # The comment: the summary, then each node's resources by name, one line each, and what changed.
    text = comment("lab", summary, preview.output, "preview-lab")
    (fleet.project.events / "comment-lab.md").write_text(text)  # docs/pull-requests.md shows it
    for name in fleet.names:
        assert f"    ~ {name}-membership: (update)\n      ~ kubelet.maxPods: 110 => 77\n" in text, text
    assert "[urn=" not in text and "Cut at" not in text, text


def test_a_rolling_kubelet_change_cordons_one_node_at_a_time_and_the_service_keeps_answering(fleet: Fleet) -> None:
    fresh_namespace()
    service_ip = run_deployment("web", replicas=3, min_available=2)
    fleet.configure(_max_pods(77))
    with Watch(service_ip, fleet.hosts[-1]) as watch:
        result = fleet.project.run(*UP)
    assert result.returncode == 0, result.output
    assert result.changed(REMOTE_COMMAND) == {f"{n}-install": "update" for n in fleet.names}
    assert watch.cordoned_max == 1, watch.cordoned_max  # maxUnavailable 1: never two at once
    assert watch.cordoned_seen == set(fleet.names)  # ...and each one was
    assert watch.probes > 10 and watch.failures == [], watch.failures
    _all_ready_and_schedulable(fleet.names)
    _capacity(77, fleet.names)
    assert len(ready_pods("web")) == 3


def test_an_up_targeting_one_worker_node_changes_only_that_node(fleet: Fleet) -> None:
    target = fleet.names[1]
    fleet.configure(_max_pods(76))  # a change for every node; only one is targeted
    urn = fleet.project.urn(WORKER_NODE, target)
    result = fleet.project.run(*UP, "--target", urn, "--target-dependents")
    assert result.returncode == 0, result.output
    changed = result.changed()
    changed.pop("default", None)  # the dynamic providers' provider: it carries the config (see the preview test)
    assert changed and all(name.startswith(target) for name in changed), changed
    assert changed.get(f"{target}-install") == "update", changed
    _capacity(76, [target])
    nodes = cluster.nodes()
    assert {n: nodes[n]["status"]["capacity"]["pods"] for n in fleet.names if n != target} == {
        n: "77" for n in fleet.names if n != target
    }
    _all_ready_and_schedulable(fleet.names)


def test_an_up_killed_during_a_rolling_change_converges_after_cancel(fleet: Fleet) -> None:
    fleet.configure(_max_pods(75))

    def cordoned() -> bool:
        return any(n["spec"].get("unschedulable") for n in cluster.nodes().values())

    killed = fleet.project.killed_when(cordoned, *UP)
    assert killed.returncode != 0, killed.output  # it was killed, not finished
    locked = fleet.project.run(*UP)
    assert locked.returncode != 0 and "locked" in locked.output, locked.output
    cancelled = fleet.project.run("cancel", "--yes")
    assert cancelled.returncode == 0, cancelled.output
    resumed = fleet.project.run(*UP)
    assert resumed.returncode == 0, resumed.output
    _all_ready_and_schedulable(fleet.names)
    _capacity(75, fleet.names)
    assert _bootstrap_tokens() == [] and _pending_csrs() == []
    again = fleet.project.run(*UP)
    assert again.returncode == 0 and again.changed() == {}, (again.changed(), again.output)


def _at(version: str, sums: dict[str, dict[int, str]], allow_downgrade: bool = False) -> Callable[[dict], None]:
    def edit(raw: dict[str, Any]) -> None:
        _max_pods(75)(raw)
        at_kubernetes(version, sums, allow_downgrade)(raw)

    return edit


def _kubelet_versions(names: list[str]) -> set[str]:
    nodes = cluster.nodes()
    return {nodes[n]["status"]["nodeInfo"]["kubeletVersion"] for n in names}


def test_a_downgrade_is_refused_in_preview_and_an_upgrade_rolls_out_with_the_workload_answering(
    fleet: Fleet, sums: dict[str, dict[int, str]]
) -> None:
    older = pins.KUBERNETES_EXTRA[0]
    assert f"kubelet@{older}" in sums, f"kubelet {older} is not built: python -m lab build --kubernetes {older}"
    fleet.configure(_at(older, sums))
    refused = fleet.project.run("preview", "--diff")
    assert refused.returncode != 0, refused.output
    assert "a downgrade" in refused.output and "cluster.kubernetesVersion" in refused.output, refused.output
    assert _kubelet_versions(fleet.names) == {pins.KUBERNETES}

    # Back to the older version on purpose (allowDowngrade), then the upgrade under test.
    fleet.configure(_at(older, sums, allow_downgrade=True))
    down = fleet.project.run(*UP)
    assert down.returncode == 0, down.output
    assert _kubelet_versions(fleet.names) == {older}
    service_ip = cluster.get("service", "web", "-n", NAMESPACE)["spec"]["clusterIP"]
    wait_for("3 web pods Ready", lambda: len(ready_pods("web")) == 3, timeout=180)
    fleet.configure(_max_pods(75))
    with Watch(service_ip, fleet.hosts[-1]) as watch:
        upgrade = fleet.project.run(*UP)
    assert upgrade.returncode == 0, upgrade.output
    assert _kubelet_versions(fleet.names) == {pins.KUBERNETES}
    assert watch.cordoned_max == 1 and watch.failures == [], (watch.cordoned_max, watch.failures)
    _all_ready_and_schedulable(fleet.names)


def test_a_node_left_out_of_the_config_is_drained_and_removed(fleet: Fleet) -> None:
    gone = fleet.names[-1]
    fleet.configure(lambda raw: (_max_pods(75)(raw), raw["nodes"].pop()))
    result = fleet.project.run(*UP)
    assert result.returncode == 0, result.output
    changed = result.changed()
    assert {k: v for k, v in changed.items() if k.startswith(gone)} == {
        gone: "delete",
        f"{gone}-membership": "delete",
        f"{gone}-install": "delete",
        f"{gone}-registration": "delete",
    }
    # The others lose their routes to its pod network: that service only, nothing drained.
    assert {v for k, v in changed.items() if not k.startswith(gone)} <= {"update"}
    kept = fleet.names[:-1]
    for name in kept:
        assert result.diffs()[f"{name}-membership"] == ["services.k8s-workers-pod-routes"], result.diffs()
    assert gone not in cluster.nodes()
    host = fleet.hosts[-1]
    assert remote.shell(host, "ls /etc/kubernetes /var/lib/kubelet 2>/dev/null | head -n 5 || true").strip() == ""
    wait_for("3 web pods Ready on the other nodes", lambda: len(ready_pods("web")) == 3, timeout=180)
    assert gone not in ready_pods("web").values()


def test_state_and_every_engine_output_hold_no_secret_in_clear(fleet: Fleet) -> None:
    no_leak(fleet.project.export(), "`pulumi stack export`")
    for index, output in enumerate(fleet.project.outputs):
        no_leak(output, f"the output of pulumi run {index + 1}")
    for log in sorted(fleet.project.events.glob("*.jsonl")):
        no_leak(log.read_text(), f"the event log {log.name}")
    assert any(DYNAMIC in output or "membership" in output for output in fleet.project.outputs)


def test_destroy_leaves_no_node_and_no_host_file(fleet: Fleet) -> None:
    # The workload goes first: every node leaves at once, so a budget's pods would have nowhere to go
    # (each drain would fail after drainTimeoutSeconds, naming the budget: tests/e2e/test_lifecycle.py).
    cluster.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true", timeout=180)
    result = fleet.project.run("destroy", "--yes", "--skip-preview")
    assert result.returncode == 0, result.output
    assert not set(fleet.names) & set(cluster.nodes())
    assert _bootstrap_tokens() == []
    for host in fleet.hosts:
        left = remote.shell(host, "ls /etc/kubernetes /var/lib/kubelet 2>/dev/null | head -n 5 || true")
        assert left.strip() == "", (host.name, left)
