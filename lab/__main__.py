"""`python -m lab up --nodes N [--bare N] | status | down`."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from lab import hosts as lab_hosts
from lab import mirror, rootfs, stack
from lab.hosts import LabHost
from lab.state import LabState, load, orphan_inits, orphans


def _desired(nodes: int, bare: int) -> list[tuple[str, str, str]]:
    wanted = [(f"lab-{i + 1}", lab_hosts.address_for(i), "systemd") for i in range(nodes)]
    wanted += [(f"lab-bare-{j + 1}", lab_hosts.address_for(nodes + j), "sshd") for j in range(bare)]
    return wanted


def _stop_orphans(known: set[int]) -> None:
    """What a killed run left behind, found by its root under the lab's host copies."""
    for orphan in orphans(known):
        print(f"lab: stopping orphaned systemd-nspawn {orphan.pid} on {orphan.root}", flush=True)
        lab_hosts.power_off(orphan)
    for pid in orphan_inits():  # a container whose nspawn was killed: end its whole namespace
        print(f"lab: stopping orphaned container init {pid}", flush=True)
        os.kill(pid, signal.SIGKILL)


def up(nodes: int, bare: int = 0) -> LabState:
    """Idempotent: healthy hosts are kept, missing or broken ones (re)made, extra ones stopped."""
    started = time.monotonic()
    lab_hosts.ensure_lab_key()
    stack.ensure_ca()
    base = rootfs.base_root()
    state = load()

    sums = mirror.publish()
    if not (mirror.is_ours(state.mirror_pid) and mirror.serving()):
        mirror.stop(state.mirror_pid)
        state.mirror_pid = mirror.start()
        state.save()

    known = {h.pid for h in state.hosts if h.pid is not None}
    _stop_orphans(known)

    wanted = _desired(nodes, bare)
    keep: list[LabHost] = []
    for host in state.hosts:
        spec = (host.name, host.address, host.init)
        if spec in wanted and lab_hosts.is_ours(host) and lab_hosts.reachable(host):
            keep.append(host)
        else:
            lab_hosts.power_off(host)
            lab_hosts.remove(host)
    state.hosts = keep
    state.save()

    booting = []
    for name, address, init in wanted:
        if any(h.name == name for h in keep):
            continue
        host = lab_hosts.prepare(name, address, base, init)
        lab_hosts.boot(host)
        state.hosts.append(host)
        state.save()  # the PID is on disk before we wait on it
        booting.append(host)
    state.hosts.sort(key=lambda h: [int(p) for p in h.address.split(".")])
    lab_hosts.write_known_hosts(state.hosts)
    for host in booting:
        lab_hosts.wait_until_up(host)
    state.save()
    stack.write_stack_file(stack.lab_config(state.hosts, sums))
    print(
        f"lab: {len(state.hosts)} hosts up in {time.monotonic() - started:.1f} s; "
        f"mirror {mirror.base_url()}; stack file {stack.STACK_FILE.name}",
        flush=True,
    )
    return state


def down() -> None:
    state = load()
    for host in state.hosts:
        lab_hosts.power_off(host)
        lab_hosts.remove(host)
    _stop_orphans(set())
    mirror.stop(state.mirror_pid)
    LabState().save()
    stack.STACK_FILE.unlink(missing_ok=True)
    print("lab: down", flush=True)


def status() -> int:
    state = load()
    if not state.hosts:
        print("lab: no hosts")
    for host in state.hosts:
        running = lab_hosts.is_ours(host)
        ssh = running and lab_hosts.reachable(host)
        print(f"{host.name:12} {host.address:12} init={host.init:8} pid={host.pid} running={running} ssh={ssh}")
    print(f"mirror {mirror.base_url()} running={mirror.is_ours(state.mirror_pid) and mirror.serving()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab")
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="start (or repair) the lab hosts and the artifact mirror")
    start.add_argument("--nodes", type=int, default=2, help="hosts running systemd (default 2)")
    start.add_argument("--bare", type=int, default=0, help="extra hosts with sshd but no systemd")
    commands.add_parser("status", help="what is running")
    commands.add_parser("down", help="power the hosts off and remove their copies")
    args = parser.parse_args(argv)
    if args.command == "up":
        if not 1 <= args.nodes + args.bare <= 50:
            parser.error("between 1 and 50 hosts")
        up(args.nodes, args.bare)
        return 0
    if args.command == "down":
        down()
        return 0
    return status()


if __name__ == "__main__":
    sys.exit(main())
