"""The lab through the real Pulumi engine, measured (not a timed test): every figure is a real
`pulumi` run of a lab stack (file backend, the policy pack on), timed from outside; medians of
`--repeat` runs.

- first `pulumi up` -> every Node Ready, 1, 3 and 5 nodes (a new stack each time; `up` returns
  only once its nodes are Ready), and the `destroy` after it;
- a no-op `up` and a `refresh` of 5 nodes, with the SSH sessions the no-op opened per node;
- a rolling kubelet setting on 3 nodes (maxUnavailable 1, a 3-replica Deployment under a
  PodDisruptionBudget running);
- the upgrade v1.36.4 -> v1.37.2 of the same 3 nodes (reached by an allowed downgrade first).

Usage: venv/bin/python benchmarks/bench_engine.py [--repeat 3] [--keep]
(as root; needs the engine on PATH and `python -m lab build --kubernetes v1.36.4`)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from k8s_workers.config.loader import load_config
from lab import cluster, images, mirror, pins, remote, stack
from lab.__main__ import down, up
from lab.hosts import LabHost
from lab.install import removal_jobs, run_all
from lab.paths import ADMIN_KUBECONFIG
from tests.e2e.helpers import fresh_namespace, run_deployment
from tests.engine.pulumi_cli import ROOT, Project, Result, missing

NODES = 5
FAN_OUT = (1, 3, 5)
OLDER = pins.KUBERNETES_EXTRA[0]
UP = ("up", "--yes", "--skip-preview", "--policy-pack", str(ROOT / "policy"))
SSH_LOG = "journalctl _COMM=sshd -o cat --no-pager | grep -c '^Accepted publickey' || true"


def ok(result: Result) -> Result:
    if result.returncode != 0:
        raise SystemExit(f"pulumi {' '.join(result.args)} failed:\n{result.output[-4000:]}")
    return result


class Bench:
    def __init__(self, hosts: list[LabHost], sums: dict[str, dict[int, str]], workdir: Path):
        self.hosts, self.sums, self.workdir = hosts, sums, workdir
        self.stacks = 0
        self.rows: dict[str, list[float]] = {}
        self.state_bytes: dict[str, int] = {}

    def record(self, name: str, seconds: float) -> None:
        self.rows.setdefault(name, []).append(seconds)

    def stack(self, hosts: list[LabHost]) -> tuple[Project, Callable[..., None]]:
        """A new stack over `hosts`, and how to set its whole config (the lab's, edited)."""
        self.stacks += 1
        project = Project(self.workdir / f"s{self.stacks}", "bench", None, kubeconfig=str(ADMIN_KUBECONFIG))
        names = {h.name for h in hosts}

        def configure(edit: Callable[[dict[str, Any]], None] | None = None) -> None:
            raw = stack.lab_config(self.hosts, self.sums)
            raw["nodes"] = [n for n in raw["nodes"] if n["name"] in names]
            if edit is not None:
                edit(raw)
            project.stack_file.write_text(stack.stack_document(raw))

        configure()
        return project, configure

    def timed(self, name: str, project: Project, *args: str) -> Result:
        result = ok(project.run(*args))
        self.record(name, result.seconds)
        return result


def state_bytes_per_node(project: Project, node: str) -> dict[str, int]:
    """What one node's resources weigh in the stack's state (`pulumi stack export`, secrets as
    ciphertext): the engine rewrites all of it after every step."""
    document = json.loads(project.export())
    sizes: dict[str, int] = {}
    for resource in document["deployment"]["resources"]:
        name = resource["urn"].rsplit("::", 1)[1]
        if name == node or name.startswith(f"{node}-"):
            sizes[name] = len(json.dumps(resource))
    sizes["whole state"] = len(json.dumps(document))
    return sizes


def clean_slate(hosts: list[LabHost], sums: dict[str, dict[int, str]]) -> None:
    config = load_config(stack.lab_config(hosts, sums))
    errors = [str(r) for r in run_all(removal_jobs(config, hosts)).values() if isinstance(r, remote.HostError)]
    if errors:
        raise SystemExit("\n".join(errors))
    cluster.delete_nodes(h.name for h in hosts)


def one_round(bench: Bench, workload: list[images.Image]) -> dict[str, int]:
    hosts = bench.hosts
    for n in FAN_OUT:
        project, configure = bench.stack(hosts[:n])
        bench.timed(f"first `pulumi up` -> all Ready, {n} node{'s' if n > 1 else ''}", project, *UP)
        cluster.wait_ready(h.name for h in hosts[:n])  # `up` returned only once they were: this is a check
        if n == NODES:
            bench.state_bytes = state_bytes_per_node(project, hosts[0].name)
            before = {h.name: int(remote.shell(h, SSH_LOG).strip() or 0) for h in hosts}
            noop = bench.timed(f"no-op `pulumi up`, {n} nodes", project, *UP)
            after = {h.name: int(remote.shell(h, SSH_LOG).strip() or 0) for h in hosts}
            if noop.changed():
                raise SystemExit(f"the no-op up changed {noop.changed()}")
            bench.timed(f"`pulumi refresh`, {n} nodes", project, "refresh", "--yes", "--skip-preview")
            sessions = {name: after[name] - before[name] - 1 for name in after}  # minus the one reading `before`
        if n == 3:
            for host in hosts[:n]:
                images.load(host, workload)
            fresh_namespace()
            run_deployment("web", replicas=3, min_available=2)
            configure(lambda raw: raw["defaults"].update(maxPods=77))
            bench.timed("rolling kubelet setting, 3 nodes, maxUnavailable 1", project, *UP)
            configure(stack.at_kubernetes(OLDER, bench.sums, allow_downgrade=True))
            ok(project.run(*UP))  # not measured: the way to the older version
            configure()
            bench.timed(f"upgrade {OLDER} -> {pins.KUBERNETES}, 3 nodes, maxUnavailable 1", project, *UP)
            fresh_namespace()  # its budget would hold the destroy's drains up
        bench.timed(f"`pulumi destroy`, {n} node{'s' if n > 1 else ''}", project, "destroy", "--yes", "--skip-preview")
    return sessions


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="leave the lab running")
    args = parser.parse_args()
    if (why := missing()) is not None:
        raise SystemExit(why)
    down()
    state = up(nodes=NODES)
    hosts = [h for h in state.hosts if h.init == "systemd"]
    sums = mirror.publish((pins.KUBERNETES, OLDER))
    clean_slate(hosts, sums)
    workload = images.build()
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as workdir:
        bench = Bench(hosts, sums, Path(workdir))
        sessions = [one_round(bench, workload) for _ in range(args.repeat)]
    print(f"pulumi {time.strftime('%Y-%m-%d')}, {args.repeat} runs each, medians (seconds, wall time of the CLI)")
    print("| measurement | median s | runs |")
    print("|---|---:|---|")
    for name, values in bench.rows.items():
        print(f"| {name} | {statistics.median(values):.1f} | {', '.join(f'{v:.1f}' for v in values)} |")
    print(f"SSH sessions per node opened by the no-op up: {max(max(s.values()) for s in sessions)}")
    print(f"state bytes, one node's resources and the whole {NODES}-node stack: {bench.state_bytes}")
    if not args.keep:
        down()


if __name__ == "__main__":
    main()
