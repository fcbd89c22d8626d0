"""The lab, measured (not a timed test): `lab up`, install start -> Node Ready for 1, 3 and 5 nodes
in parallel (the fan-out of a first `up`: how install time grows with nodes), a no-op re-run (time,
what it wrote, SSH sessions per node), and the memory of the control plane and of one node. Real
binaries, real control plane.

Usage: venv/bin/python benchmarks/bench_lab.py [--repeat 3] [--keep]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from k8s_workers.config.loader import StackConfig, load_config
from lab import cluster, control_plane, images, mirror, remote, stack
from lab.__main__ import down, up
from lab.hosts import LabHost, cgroup_dirs
from lab.install import install_jobs, issue_tokens, removal_jobs, run_all

SSH_LOG = "journalctl -u ssh -o cat --no-pager | grep -c 'Accepted publickey' || true"
NODES = 5
FAN_OUT = (1, 3, 5)


def _check(results: dict) -> list:
    errors = [str(r) for r in results.values() if isinstance(r, remote.HostError)]
    if errors:
        raise SystemExit("\n".join(errors))
    return list(results.values())


def clean(config: StackConfig, hosts: list[LabHost]) -> None:
    _check(run_all(removal_jobs(config, hosts)))
    cluster.delete_nodes(h.name for h in hosts)


def install_to_ready(config: StackConfig, hosts: list[LabHost]) -> float:
    """Seconds from the install's start to every Node Ready (the images are imported meanwhile,
    as a registry pull would be; they are not needed for Ready). The tokens exist before, as the
    nodes' NodeMembership resources make them before their installs."""
    issue_tokens(config, hosts)
    started = time.perf_counter()
    _check(run_all(install_jobs(config, hosts)))
    cluster.wait_ready(h.name for h in hosts)
    seconds = time.perf_counter() - started
    for host in hosts:
        images.load(host, images.build())
    return seconds


def sessions(hosts: list[LabHost]) -> dict[str, int]:
    return {h.name: int(remote.shell(h, SSH_LOG).strip() or 0) for h in hosts}


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def node_rss_mib(host: LabHost) -> float:
    """Resident memory of every process the host runs (its systemd, sshd, containerd, kubelet,
    kube-proxy and pods): the sum of their VmRSS, read from the host's own cgroup."""
    unified = [d for d in cgroup_dirs(host.name) if "/systemd/" in str(d)] or cgroup_dirs(host.name)
    pids = {int(p) for procs in unified[0].rglob("cgroup.procs") for p in procs.read_text().split()}
    return sum(rss_mib(pid) for pid in pids if Path(f"/proc/{pid}").exists())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="leave the lab running")
    args = parser.parse_args()
    down()
    started = time.perf_counter()
    state = up(nodes=NODES)
    lab_up = time.perf_counter() - started
    hosts = [h for h in state.hosts if h.init == "systemd"]
    config = load_config(stack.lab_config(state.hosts, mirror.publish()))
    cluster.apply(cluster.program_objects(config))
    rows: dict[str, list[float]] = {f"install -> Ready, {n} nodes in parallel": [] for n in FAN_OUT}
    noop: list[float] = []
    noop_sessions: list[int] = []
    noop_writes: list[int] = []
    for _ in range(args.repeat):
        for n in FAN_OUT:
            clean(config, hosts)
            rows[f"install -> Ready, {n} nodes in parallel"].append(install_to_ready(config, hosts[:n]))
        before = sessions(hosts)
        tick = time.perf_counter()
        results = _check(run_all(install_jobs(config, hosts)))
        noop.append(time.perf_counter() - tick)
        after = sessions(hosts)
        noop_sessions.append(max(after[h.name] - before[h.name] - 1 for h in hosts))  # minus the one reading `after`
        noop_writes.append(sum(len(r.summary["files_changed"]) + len(r.summary["binaries_changed"]) for r in results))
    rows[f"no-op re-run, {NODES} nodes"] = noop
    print(f"lab up ({NODES} hosts + control plane; binaries and root cached): {lab_up:.1f} s")
    print("| measurement | median s | runs |")
    print("|---|---:|---|")
    for name, values in rows.items():
        print(f"| {name} | {statistics.median(values):.2f} | {', '.join(f'{v:.2f}' for v in values)} |")
    print(f"no-op re-run: files or binaries written: {max(noop_writes)}; SSH sessions per node: {max(noop_sessions)}")
    memory = {name: rss_mib(pid) for name, pid in state.control_plane.items() if control_plane.is_ours(name, pid)}
    print("control plane RSS MiB: " + ", ".join(f"{n} {v:.0f}" for n, v in memory.items()))
    print(f"one node (kubelet, kube-proxy, containerd, systemd, sshd), RSS MiB: {node_rss_mib(hosts[0]):.0f}")
    if not args.keep:
        down()


if __name__ == "__main__":
    main()
