"""Rolling changes on the lab, measured (not a timed test): a kubelet setting rolled out to 3
nodes with maxUnavailable 1 (cordon, drain, install, Ready, uncordon, node by node), and the
upgrade v1.36.4 -> v1.37.2 of 3 nodes, each with a 3-replica Deployment under a
PodDisruptionBudget (minAvailable 2) running. Real binaries, real control plane.

Usage: venv/bin/python benchmarks/bench_rollout.py [--repeat 2] [--keep]
(needs `python -m lab build --kubernetes v1.36.4` for the upgrade)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from k8s_workers.config.loader import StackConfig, load_config
from lab import cluster, images, mirror, pins, remote, stack
from lab.__main__ import down, up
from lab.hosts import LabHost
from lab.install import install_jobs, issue_tokens, register_all, removal_jobs, roll_out, run_all
from tests.e2e.helpers import fresh_namespace, run_deployment

NODES = 3
OLDER = pins.KUBERNETES_EXTRA[0]


def _check(results: dict) -> None:
    errors = [str(r) for r in results.values() if isinstance(r, remote.HostError | Exception)]
    if errors:
        raise SystemExit("\n".join(errors))


def fresh_join(config: StackConfig, hosts: list[LabHost]) -> None:
    """Hosts wiped, Nodes deleted, then joined as `pulumi up` would, images imported, a workload."""
    _check(run_all(removal_jobs(config, hosts)))
    cluster.delete_nodes(h.name for h in hosts)
    issue_tokens(config, hosts)
    _check(run_all(install_jobs(config, hosts)))
    _check(register_all(config, hosts))
    for host in hosts:
        images.load(host, images.build())
    fresh_namespace()
    run_deployment("web", replicas=3, min_available=2)


def timed_rollout(old: StackConfig, new: StackConfig, hosts: list[LabHost]) -> float:
    started = time.perf_counter()
    report = roll_out(old, new, hosts)
    seconds = time.perf_counter() - started
    if report.failed or not all(report.drained.values()):
        raise SystemExit(f"rollout failed: {report.failed} {report.steps}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="leave the lab running")
    args = parser.parse_args()
    down()
    state = up(nodes=NODES)
    hosts = [h for h in state.hosts if h.init == "systemd"]
    sums = mirror.publish((pins.KUBERNETES, OLDER))
    raw = stack.lab_config(state.hosts, sums)
    config = load_config(raw)
    changed = load_config({**raw, "defaults": {**raw["defaults"], "maxPods": 77}})
    old_raw = stack.lab_config(state.hosts, sums)
    old_raw["cluster"]["kubernetesVersion"] = OLDER.lstrip("v")
    for name in ("kubelet", "kube-proxy"):
        old_raw["cluster"]["binaries"]["artifacts"][name]["sha256"] = {"amd64": sums[f"{name}@{OLDER}"][1]}
    older = load_config(old_raw)
    cluster.apply(cluster.program_objects(config))
    rows: dict[str, list[float]] = {
        f"kubelet setting, {NODES} nodes, maxUnavailable 1": [],
        f"upgrade {OLDER} -> {pins.KUBERNETES}, {NODES} nodes, maxUnavailable 1": [],
    }
    for _ in range(args.repeat):
        fresh_join(config, hosts)
        rows[f"kubelet setting, {NODES} nodes, maxUnavailable 1"].append(timed_rollout(config, changed, hosts))
        fresh_join(older, hosts)
        rows[f"upgrade {OLDER} -> {pins.KUBERNETES}, {NODES} nodes, maxUnavailable 1"].append(
            timed_rollout(older, config, hosts)
        )
    print("| rolling change (drain, install, Ready, uncordon; node by node) | median s | runs |")
    print("|---|---:|---|")
    for name, values in rows.items():
        print(f"| {name} | {statistics.median(values):.1f} | {', '.join(f'{v:.1f}' for v in values)} |")
    if not args.keep:
        down()


if __name__ == "__main__":
    main()
