"""Evaluate the program under mocks for 1, 10, 100 and 1000 nodes (not a timed test).

Each size runs in its own process so peak memory (ru_maxrss) is that size's alone. Mocks measure
the program's own cost (the Python SDK and our code), not the engine's: what a real preview costs
is measured by benchmarks/bench_engine_scale.py. The table also gives the resources the engine
would hold (the program's plus the Stack) and the size of the stack config it hands the program
(PULUMI_CONFIG, capped at 128 KiB by Linux), inline and with an inventory directory.
Usage: venv/bin/python benchmarks/bench_program.py [--sizes 1,10,100,1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))
MAX_ARG_STRLEN = 128 * 1024


def engine_config_bytes(raw: dict) -> tuple[int, int]:
    """PULUMI_CONFIG's size with the nodes inline, and with them in an inventory directory."""
    from tests.harness import config_values

    inline = len(json.dumps(config_values(raw)).encode())
    with_inventory = len(json.dumps(config_values({**raw, "nodes": [], "inventory": "inventory"})).encode())
    return inline, with_inventory


def config_for(nodes: int) -> dict:
    from tests.conftest import base_config
    from tests.pki import make_ca, make_host_key, make_ssh_key

    raw = base_config(make_ca(), make_ssh_key(), cni={"mode": "calico"})
    raw["cluster"]["binaries"]["artifacts"].pop("cni-plugins")
    first = ipaddress.IPv4Address("198.18.0.1")  # benchmarking range (RFC 2544), never contacted
    raw["nodes"] = [{"name": f"worker-{i:04d}", "address": str(first + i)} for i in range(nodes)]
    raw["defaults"]["ssh"]["hostKey"] = make_host_key()
    return raw


def child(nodes: int) -> None:
    from tests.harness import run_program

    raw = config_for(nodes)
    start = time.perf_counter()
    run = run_program(raw, record=False)
    seconds = time.perf_counter() - start
    assert run.error is None, run.error
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    inline, with_inventory = engine_config_bytes(raw)
    print(
        json.dumps(
            {
                "nodes": nodes,
                "resources": len(run.resources),
                # a node's own: its WorkerNode and everything under it
                "per_node": sum(1 for r in run.resources if "k8s-workers:index:WorkerNode" in f"{r.type} {r.parent}")
                / nodes,
                "seconds": seconds,
                "peak_mib": peak_mib,
                "config_inline": inline,
                "config_inventory": with_inventory,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1,10,100,1000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", type=int)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child)
        return
    print(
        "| nodes | engine resources | per node + per stack | mocks s (median) | peak MiB | PULUMI_CONFIG inline | with inventory "
        "|"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for size in map(int, args.sizes.split(",")):
        runs = []
        for _ in range(args.repeat):
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(size)], capture_output=True, text=True, check=True
            ).stdout
            runs.append(json.loads(out.strip().splitlines()[-1]))
        engine = runs[0]["resources"] + 1  # the engine also holds the Stack resource
        seconds = statistics.median(r["seconds"] for r in runs)
        peak = max(r["peak_mib"] for r in runs)
        inline = runs[0]["config_inline"]
        over = " (over 128 KiB: the engine cannot start the program)" if inline > MAX_ARG_STRLEN else ""
        print(
            f"| {size} | {engine} | {runs[0]['per_node']:.0f} + {engine - runs[0]['per_node'] * size:.0f} | {seconds:.2f} | {peak:.0f} | {inline / 1024:.1f} KiB{over} "
            f"| {runs[0]['config_inventory'] / 1024:.1f} KiB |",
            flush=True,
        )


if __name__ == "__main__":
    main()
