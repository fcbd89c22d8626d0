"""Install timings on real lab hosts (not a timed test).

Wall time to install 1 and 5 hosts in parallel from clean, a no-op re-run, and how many SSH
sessions each node saw during the no-op (counted from sshd's own log on the host).
Usage: venv/bin/python benchmarks/bench_lab.py [--repeat 3] [--keep]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from components.config import load_config
from lab import mirror, remote, stack
from lab.__main__ import down, up
from lab.hosts import LabHost
from lab.install import install_jobs, removal_jobs, run_all

SSH_LOG = "journalctl -u ssh -o cat --no-pager | grep -c 'Accepted publickey' || true"


def timed_install(hosts: list[LabHost], config) -> tuple[float, list]:
    jobs = install_jobs(config, hosts)
    started = time.perf_counter()
    results = run_all(jobs)
    seconds = time.perf_counter() - started
    errors = [str(r) for r in results.values() if isinstance(r, remote.HostError)]
    if errors:
        raise SystemExit("\n".join(errors))
    return seconds, list(results.values())


def sessions(hosts: list[LabHost]) -> dict[str, int]:
    return {h.name: int(remote.shell(h, SSH_LOG).strip() or 0) for h in hosts}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="leave the lab running")
    args = parser.parse_args()
    started = time.perf_counter()
    state = up(nodes=5)
    lab_up = time.perf_counter() - started
    hosts = [h for h in state.hosts if h.init == "systemd"]
    config = load_config(stack.lab_config(state.hosts, mirror.publish()))
    rows: dict[str, list[float]] = {
        "install 1 host": [],
        "install 5 hosts in parallel": [],
        "no-op re-run, 5 hosts": [],
    }
    noop_sessions: list[int] = []
    noop_writes: list[int] = []
    for _ in range(args.repeat):
        run_all(removal_jobs(config, hosts))
        rows["install 1 host"].append(timed_install(hosts[:1], config)[0])
        run_all(removal_jobs(config, hosts))
        rows["install 5 hosts in parallel"].append(timed_install(hosts, config)[0])
        before = sessions(hosts)
        seconds, results = timed_install(hosts, config)
        after = sessions(hosts)
        rows["no-op re-run, 5 hosts"].append(seconds)
        # after - before counts the no-op's sessions plus the one that read `after`
        noop_sessions.append(max(after[h.name] - before[h.name] - 1 for h in hosts))
        noop_writes.append(sum(len(r.summary["files_changed"]) + len(r.summary["binaries_changed"]) for r in results))
    print(f"lab up (5 hosts, root cached): {lab_up:.1f} s")
    print("| measurement | median s | runs |")
    print("|---|---:|---|")
    for name, values in rows.items():
        print(f"| {name} | {statistics.median(values):.2f} | {', '.join(f'{v:.2f}' for v in values)} |")
    print(f"no-op re-run: files or binaries written: {max(noop_writes)}; SSH sessions per node: {max(noop_sessions)}")
    if not args.keep:
        down()


if __name__ == "__main__":
    main()
