"""A fleet of N nodes as P pool stacks through the real Pulumi engine, measured (not a timed test).

The cluster stack is real: `pulumi up` of role `cluster` against the lab's control plane (its
bindings, kube-proxy identity and outputs). Then the control plane stops, and each pool's first
`pulumi preview` runs as in a pull request without cluster access: N/P nodes from an `inventory`
file (addresses in 198.18.0.0/15, never contacted), reading the cluster stack's outputs. Measured:
each pool's preview alone (wall time, peak memory of the process tree), then the whole fleet's
preview with the fleet command (`python -m components fleet preview --parallel K`).

Usage: venv/bin/python benchmarks/bench_engine_fleet.py [--nodes 1000] [--pools 4] [--parallel 2]
       [--env PULUMI_SKIP_CHECKPOINTS=true]
(as root: the lab's control plane; the engine on PATH)
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_engine_scale import measured, sampled
from lab import control_plane, mirror, stack
from lab.__main__ import down, up
from lab.paths import ADMIN_KUBECONFIG
from tests.engine.pulumi_cli import Project, missing
from tests.pki import make_host_key, make_ssh_key

CLUSTER_STACK = "organization/k8s-workers/cluster"


def cluster_settings() -> dict[str, Any]:
    raw = stack.lab_config([], mirror.publish())
    raw["cluster"]["binaries"]["artifacts"].pop("cni-plugins")
    raw["cluster"]["cni"] = {"mode": "calico"}
    return raw["cluster"]


def pool_stack(project: Project, pool: str, first: int, count: int, env: dict[str, str]) -> Project:
    pool_project = project.with_stack(pool)
    pool_project.env.update(env)
    start = ipaddress.IPv4Address("198.18.0.1") + first
    nodes = [{"name": f"{pool}-{i:04d}", "address": str(start + i)} for i in range(count)]
    (project.dir / f"inventory-{pool}.yaml").write_text(yaml.safe_dump({"nodes": nodes}, sort_keys=False))
    settings = {
        "role": "pool",
        "clusterStack": CLUSTER_STACK,
        "inventory": f"inventory-{pool}.yaml",
        "defaults": {"ssh": {"user": "root", "hostKey": make_host_key()}},
    }
    document = {"config": {f"k8s-workers:{k}": v for k, v in settings.items()}}
    pool_project.stack_file.write_text(yaml.safe_dump(document, sort_keys=False))
    pool_project.set_secret("sshPrivateKey", make_ssh_key())
    return pool_project


def fleet_preview(project: Project, parallel: int, env: dict[str, str]) -> dict[str, Any]:
    """The fleet command over every stack, `parallel` at once: wall time and the tree's peak memory."""
    command = [str(project.dir / "venv/bin/python"), "-m", "components", "fleet", "preview", "--parallel", str(parallel),
               "--file", str(project.dir / "fleet.yaml"), "--logs", str(project.dir / ".fleet")]  # fmt: skip
    returncode, output, seconds, peak_mib = sampled(command, project.dir, {**project.env, **env})
    if returncode != 0:
        raise SystemExit(f"fleet preview failed:\n{output[-3000:]}")
    return {"seconds": seconds, "peak_mib": peak_mib, "output": output}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pools", type=int, default=4)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the pool previews")
    args = parser.parse_args()
    if (why := missing()) is not None:
        raise SystemExit(why)
    env = dict(item.split("=", 1) for item in args.env)
    size = args.nodes // args.pools
    down()
    state = up(nodes=0)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-fleet-") as workdir:
            project = Project(Path(workdir), "cluster", None, kubeconfig=str(ADMIN_KUBECONFIG))
            project.stack_file.write_text(stack.stack_document({"role": "cluster", "cluster": cluster_settings()}))
            made = measured(project, "up", "--yes", "--skip-preview")
            print(f"cluster stack: `pulumi up` against the lab control plane, {made['seconds']:.1f} s")
            control_plane.stop(state.control_plane)  # the pools preview as in a pull request: no cluster
            pools = [f"pool-{i + 1}" for i in range(args.pools)]
            projects = {p: pool_stack(project, p, i * size, size, env) for i, p in enumerate(pools)}
            (project.dir / "fleet.yaml").write_text(
                yaml.safe_dump({"cluster": "cluster", "waves": [pools], "parallel": args.parallel})
            )
            settings = ", ".join(args.env) or "engine defaults"
            print(f"\n{args.nodes} nodes as {args.pools} pools of {size}; first previews, no cluster ({settings}); "
                  f"{os.cpu_count()} cores")  # fmt: skip
            print("| run | engine resources | seconds | peak MiB (process tree) |")
            print("|---|---:|---:|---:|")
            alone = {}
            for pool, pool_project in projects.items():
                alone[pool] = measured(pool_project, "preview")
                r = alone[pool]
                print(f"| {pool} alone | {r['resources']} | {r['seconds']:.1f} | {r['peak_mib']:.0f} |", flush=True)
            fleet = fleet_preview(project, args.parallel, env)
            print(f"| the fleet (cluster + {args.pools} pools), {args.parallel} at once | – | "
                  f"{fleet['seconds']:.1f} | {fleet['peak_mib']:.0f} |")  # fmt: skip
            slowest = max(r["seconds"] for r in alone.values())
            print(f"| a CI matrix, one runner per pool (the slowest pool) | – | {slowest:.1f} | – |")
            print("\nfleet command output:\n" + fleet["output"])
    finally:
        down()


if __name__ == "__main__":
    main()
