"""`python -m lab build | up --nodes N [--bare N] | status | down | demo | demo-down`."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from lab import build, control_plane, demo, images, mirror, network, rootfs, stack
from lab import hosts as lab_hosts
from lab.hosts import LabHost
from lab.install import forget_tokens
from lab.paths import ADMIN_KUBECONFIG
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
    """Idempotent: what runs healthy is kept, what is missing or broken is (re)made, extra hosts stopped."""
    started = time.monotonic()
    build.build_all()
    images.build()
    lab_hosts.ensure_lab_key()
    stack.ensure_ca()
    base = rootfs.base_root()
    state = load()
    network.ensure_bridge()

    sums = mirror.publish()
    if not (mirror.is_ours(state.mirror_pid) and mirror.serving()):
        mirror.stop(state.mirror_pid)
        state.mirror_pid = mirror.start()
        state.save()
    binaries = {name: build.binary(name) for name in ("etcd", *build.CONTROL_PLANE_BINARIES)}
    try:
        control_plane.up(state.control_plane, binaries)
    finally:
        state.save()  # what started is on disk, even when a later component failed

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
        f"lab: control plane at {control_plane.api_server_url()}, {len(state.hosts)} hosts up in "
        f"{time.monotonic() - started:.1f} s; mirror {mirror.base_url()}; stack file {stack.STACK_FILE.name}; "
        f"kubeconfig {ADMIN_KUBECONFIG}",
        flush=True,
    )
    return state


def down() -> None:
    state = load()
    for host in state.hosts:
        lab_hosts.power_off(host)
        lab_hosts.remove(host)
    _stop_orphans(set())
    for leftover in network.hosts_present():  # namespaces of hosts a killed run never recorded
        lab_hosts.remove_cgroups(leftover)
        network.remove_host(leftover)
    mirror.stop(state.mirror_pid)
    control_plane.stop(state.control_plane)
    control_plane.stop({p.name: p.pid for p in control_plane.orphans()}, wipe=True)
    network.remove_bridge()
    forget_tokens()
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
    for name, healthy in control_plane.running(state.control_plane).items():
        print(f"{name:24} pid={state.control_plane.get(name)} healthy={healthy}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["build"]:
        return build.main(argv[1:])
    if argv[:1] == ["conformance"]:
        from lab import conformance

        return conformance.main(argv[1:])
    if argv[:1] in (["demo"], ["demo-down"]):  # make demo / make demo-down
        return demo.main(["down"] if argv[0] == "demo-down" else [])
    parser = argparse.ArgumentParser(prog="python -m lab")
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="start (or repair) the control plane, the hosts and the artifact mirror")
    start.add_argument("--nodes", type=int, default=2, help="hosts running systemd (default 2)")
    start.add_argument("--bare", type=int, default=0, help="extra hosts with sshd but no systemd")
    commands.add_parser("build", help="build the real binaries from Go modules (cached)")
    commands.add_parser("status", help="what is running")
    commands.add_parser("demo", help="3 nodes joined by `pulumi up`, shown working, and what to try next")
    commands.add_parser("demo-down", help="`pulumi destroy` of the demo stack, then `down`")
    commands.add_parser("conformance", help="Kubernetes' conformance suite on 3 nodes the program installed")
    commands.add_parser("down", help="power the hosts off, stop the control plane, remove what the lab made")
    args = parser.parse_args(argv)
    if args.command in ("up", "down") and os.geteuid() != 0:
        print(
            f"lab {args.command}: the lab needs root (it boots hosts with systemd-nspawn in network namespaces); "
            f"run it as root, e.g. `sudo venv/bin/python -m lab {args.command}`",
            file=sys.stderr,
        )
        return 2
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
