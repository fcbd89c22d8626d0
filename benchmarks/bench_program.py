"""Evaluate the program under mocks for 1, 10, 100 and 1000 nodes (not a timed test).

Each size runs in its own process so peak memory (ru_maxrss) is that size's alone.
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
    print(json.dumps({"nodes": nodes, "resources": len(run.resources), "seconds": seconds, "peak_mib": peak_mib}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1,10,100,1000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", type=int)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child)
        return
    print("| nodes | resources | resources/node | seconds (median) | peak memory MiB (max) |")
    print("|---:|---:|---:|---:|---:|")
    for size in map(int, args.sizes.split(",")):
        runs = []
        for _ in range(args.repeat):
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(size)], capture_output=True, text=True, check=True
            ).stdout
            runs.append(json.loads(out.strip().splitlines()[-1]))
        resources = runs[0]["resources"]
        seconds = statistics.median(r["seconds"] for r in runs)
        peak = max(r["peak_mib"] for r in runs)
        print(f"| {size} | {resources} | {(resources - 6) / size:.1f} | {seconds:.2f} | {peak:.0f} |", flush=True)


if __name__ == "__main__":
    main()
