"""Fleet-sized stacks through the real Pulumi engine, measured (not a timed test): a stack of N nodes
from an `inventory` file (addresses in 198.18.0.0/15, the benchmarking range, never contacted),
its first `pulumi preview` (empty state) as a pull request without cluster access runs it; wall
time, peak resident memory of the whole process tree (the CLI, the language host, the program and
the plugins, sampled every 0.1 s) and the resources the engine counted.

Usage: venv/bin/python benchmarks/bench_engine_scale.py [--sizes 10,100,250,1000] [--repeat 1]
       [--env PULUMI_SKIP_CHECKPOINTS=true] [--max-unavailable 1]
(needs `pulumi` and the pinned plugins on PATH; no root, no lab)
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import base_config
from tests.engine.pulumi_cli import Project, missing
from tests.pki import make_ca, make_host_key, make_ssh_key


def stack_config(nodes: int, max_unavailable: int | str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(raw config with `inventory: inventory.yaml`, the inventory's nodes)."""
    raw = base_config(make_ca(), None, cni={"mode": "calico"})
    raw["cluster"]["binaries"]["artifacts"].pop("cni-plugins")
    raw["cluster"]["rollout"] = {"maxUnavailable": max_unavailable}
    raw["defaults"]["ssh"]["hostKey"] = make_host_key()
    first = ipaddress.IPv4Address("198.18.0.1")
    inventory = [{"name": f"worker-{i:04d}", "address": str(first + i)} for i in range(nodes)]
    raw["nodes"] = []
    raw["inventory"] = "inventory.yaml"
    return raw, inventory


def _tree_rss_kib(root: int) -> int:
    """Resident memory of `root` and every process below it."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        pid, ppid = int(entry.name), int(fields.get("PPid", "0").strip())
        children.setdefault(ppid, []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0])
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total


def sampled(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str, float, float]:
    """Run `command`, sampling its process tree's memory every 0.1 s: (exit code, output, seconds, peak MiB)."""
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss_kib(process.pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output = process.communicate()[0].decode()
    seconds = time.monotonic() - started
    done.set()
    sampler.join()
    return process.returncode, output, seconds, peak / 1024


def measured(project: Project, *args: str) -> dict[str, Any]:
    """Run `pulumi ARGS` in the project, sampling its process tree's memory."""
    command, log = project.command(*args)
    returncode, output, seconds, peak_mib = sampled(command, project.dir, project.env)
    result = project._result(args, returncode, output, log, seconds)
    if result.returncode != 0:
        raise SystemExit(f"pulumi {' '.join(args)} failed:\n{output[-3000:]}")
    changes = result.changes()
    return {
        "seconds": seconds,
        "peak_mib": peak_mib,
        "resources": sum(changes.values()),
        "changes": changes,
        "lines": output.count("\n"),
    }


def first_preview(
    nodes: int, max_unavailable: int | str, env: dict[str, str], workdir: Path, parallel: int | None = None
) -> dict[str, Any]:
    raw, inventory = stack_config(nodes, max_unavailable)
    project = Project(workdir, "scale", None, kubeconfig=None)
    project.env.update(env)
    (project.dir / "inventory.yaml").write_text(yaml.safe_dump({"nodes": inventory}, sort_keys=False))
    ca_key = raw.pop("caKey")
    document = {"config": {f"k8s-workers:{k}": v for k, v in raw.items()}}
    project.stack_file.write_text(yaml.safe_dump(document, sort_keys=False))
    project.set_secret("caKey", ca_key)
    project.set_secret("sshPrivateKey", make_ssh_key())
    return measured(project, "preview", *(["--parallel", str(parallel)] if parallel else []))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10,100,250,1000")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--max-unavailable", default="1")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the pulumi process")
    parser.add_argument("--parallel", type=int, default=None, help="pulumi's --parallel (default: the engine's)")
    args = parser.parse_args()
    if (why := missing()) is not None:
        raise SystemExit(why)
    max_unavailable: int | str = int(args.max_unavailable) if args.max_unavailable.isdigit() else args.max_unavailable
    env = dict(item.split("=", 1) for item in args.env)
    parallel = [f"--parallel {args.parallel}"] if args.parallel else []
    settings = ", ".join([f"maxUnavailable {max_unavailable}", *parallel, *args.env])
    print(
        f"first `pulumi preview`, no cluster reachable ({settings}); {os.cpu_count()} cores; medians of {args.repeat}"
    )
    print("| nodes | engine resources | seconds | peak MiB (process tree) | output lines | runs (s) |")
    print("|---:|---:|---:|---:|---:|---|")
    for size in map(int, args.sizes.split(",")):
        runs = []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory(prefix="bench-scale-") as workdir:
                runs.append(first_preview(size, max_unavailable, env, Path(workdir), args.parallel))
        seconds = statistics.median(r["seconds"] for r in runs)
        each = ", ".join(f"{r['seconds']:.1f}" for r in runs)
        peak = max(r["peak_mib"] for r in runs)
        print(
            f"| {size} | {runs[0]['resources']} | {seconds:.1f} | {peak:.0f} | {runs[0]['lines']} | {each} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
