"""Lab hosts: a copy of the root per host, booted by systemd-nspawn in a network namespace of
its own on the lab network (lab/network.py), reached by SSH on its lab address.

Processes are only ever signalled by the PID the lab recorded, after checking that the PID
still runs systemd-nspawn on that host's root (PIDs get reused).

What a kubelet needs inside systemd-nspawn on this machine (cgroup v1, hybrid), all lab-only:
- a cgroup of its own per host (below this process's), so kubelets do not see each other's pods;
- the cgroup v1 hierarchies, which nspawn mounts read-only, remounted read-write inside
  (k8sw-lab-container.service, below);
- stand-ins for the kernel-wide sysctls the kubelet's protectKernelDefaults checks, and for
  nf_conntrack_max (kube-proxy 1.36 sets it at every start): /proc/sys is read-only in a
  container and these values are the machine's, so the same unit binds files holding the
  expected values over them inside the host (the machine's settings stay as they are);
- /dev/kmsg, CAP_SYSLOG and CAP_NET_ADMIN, and the keyring system calls (runc's session keyring).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from lab import network
from lab.paths import HOSTS, KNOWN_HOSTS, LAB_KEY

BOOT_TIMEOUT = 90.0
# nspawn processes started by this Python process: reaped once they are powered off.
_children: dict[int, subprocess.Popen] = {}
POWEROFF_TIMEOUT = 30.0


@dataclass
class LabHost:
    name: str
    address: str
    root: str
    pid: int | None
    host_key: str  # "ssh-ed25519 AAAA..."
    init: str = "systemd"  # "sshd": no systemd at all (a host the install must refuse)

    def to_json(self) -> dict:
        return asdict(self)


def address_for(index: int) -> str:
    return network.address_for(index)


# The kernel-wide settings the kubelet checks (protectKernelDefaults) and the install writes, and
# nf_conntrack_max, which kube-proxy up to 1.36 writes at every start whatever its value (1.37
# writes it only when lower) and which is read-only outside the machine's first network namespace.
KERNEL_STANDINS = {
    "kernel/panic": "10",
    "kernel/panic_on_oops": "1",
    "vm/overcommit_memory": "1",
    "vm/panic_on_oom": "0",
    "net/netfilter/nf_conntrack_max": "131072",
}
CONTAINER_UNIT = """[Unit]
Description=k8s-workers lab only: what a kubelet needs inside systemd-nspawn
DefaultDependencies=no
Before=sysinit.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/k8sw-lab-container

[Install]
WantedBy=sysinit.target
"""
CONTAINER_SCRIPT = """#!/bin/sh
# k8s-workers lab only (see lab/hosts.py): cgroup v1 hierarchies read-write, and stand-ins for
# kernel-wide sysctls that a container can neither change nor should change for the machine.
set -eu
if [ ! -e /sys/fs/cgroup/cgroup.controllers ]; then
  mount -o remount,bind,rw /sys/fs/cgroup
  for d in /sys/fs/cgroup/*/; do mount -o remount,bind,rw "$d"; done
fi
mkdir -p /run/k8sw-lab/sysctl
echo '{standins}' | while read -r key value; do
  [ "$(cat "/proc/sys/$key")" != "$value" ] || continue
  file="/run/k8sw-lab/sysctl/$(echo "$key" | tr / .)"
  echo "$value" > "$file"
  mount --bind "$file" "/proc/sys/$key"
done
""".format(standins="\n".join(f"{k} {v}" for k, v in KERNEL_STANDINS.items()))


def ensure_lab_key() -> None:
    if not LAB_KEY.exists():
        LAB_KEY.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "k8s-workers-lab", "-f", str(LAB_KEY)], check=True
        )


def prepare(name: str, address: str, base: Path, init: str = "systemd") -> LabHost:
    """A fresh copy of the base root, with its own host key, our key and sshd on `address` only."""
    root = HOSTS / name
    if root.exists():
        shutil.rmtree(root)
    network.ensure_host(name, address, network.HOST_ROUTES)
    HOSTS.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", "--reflink=auto", str(base), str(root)], check=True)
    (root / "etc/hostname").write_text(f"{name}\n")
    if init == "systemd":
        (root / "etc/systemd/system/k8sw-lab-container.service").write_text(CONTAINER_UNIT)
        (root / "etc/systemd/system/sysinit.target.wants").mkdir(parents=True, exist_ok=True)
        (root / "etc/systemd/system/sysinit.target.wants/k8sw-lab-container.service").symlink_to(
            "/etc/systemd/system/k8sw-lab-container.service"
        )
        script = root / "usr/local/sbin/k8sw-lab-container"
        script.write_text(CONTAINER_SCRIPT)
        script.chmod(0o755)
    (root / "etc/ssh/sshd_config.d/k8s-workers-lab.conf").write_text(
        f"ListenAddress {address}\n"
        "PermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\n"
        "HostKey /etc/ssh/ssh_host_ed25519_key\n"
        "UseDNS no\n"
    )
    key = root / "etc/ssh/ssh_host_ed25519_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True)
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(Path(f"{LAB_KEY}.pub").read_text())
    (ssh_dir / "authorized_keys").chmod(0o600)
    host_key = " ".join(Path(f"{key}.pub").read_text().split()[:2])
    return LabHost(name=name, address=address, root=str(root), pid=None, host_key=host_key, init=init)


def cgroup_dirs(name: str) -> list[Path]:
    """This host's own cgroup in every hierarchy, below this process's own cgroup there."""
    dirs = []
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # the unified hierarchy: mounted alone, or beside v1 as `unified`
            unified = Path("/sys/fs/cgroup/unified")
            mount = unified if unified.is_dir() else Path("/sys/fs/cgroup")
        else:
            mount = Path("/sys/fs/cgroup") / controllers.removeprefix("name=")
        if mount.is_dir():
            dirs.append(mount / path.lstrip("/") / "k8sw-lab" / name)
    return dirs


def _make_cgroups(name: str) -> list[Path]:
    made = cgroup_dirs(name)
    for directory in made:
        for level in (directory.parent, directory):
            level.mkdir(exist_ok=True)
            if (level / "cpuset.cpus").exists() and not (level / "cpuset.cpus").read_text().strip():
                # a new cpuset cgroup has no CPUs or memory nodes until given its parent's
                (level / "cpuset.cpus").write_text((level.parent / "cpuset.cpus").read_text())
                (level / "cpuset.mems").write_text((level.parent / "cpuset.mems").read_text())
    return made


def remove_cgroups(name: str) -> None:
    """Deepest first; what the host's systemd and kubelet left behind is empty once it is gone."""
    for directory in cgroup_dirs(name):
        if directory.is_dir():
            for sub in sorted((p for p in directory.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                sub.rmdir()
            directory.rmdir()


def boot(host: LabHost) -> None:
    command = [
        "systemd-nspawn", "--directory", host.root, "--register=no", "--keep-unit",
        f"--machine={host.name}", f"--hostname={host.name}", "--console=passive",
        f"--network-namespace-path={network.netns_path(host.name)}",
    ]  # fmt: skip
    if host.init == "systemd":
        command.insert(1, "--boot")
        command += ["--capability=CAP_SYSLOG,CAP_NET_ADMIN", "--bind=/dev/kmsg", "--system-call-filter=@keyring"]
    else:  # sshd as PID 1: a reachable host that is not run by systemd
        command += ["/bin/sh", "-c", "mkdir -p /run/sshd && exec /usr/sbin/sshd -D -e"]
    cgroups = _make_cgroups(host.name)

    def enter_cgroups() -> None:  # in the child, before exec: nspawn and the container start there
        for directory in cgroups:
            (directory / "cgroup.procs").write_text("0")

    console = open(HOSTS / f"{host.name}.console.log", "ab")  # noqa: SIM115 - handed to the child
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=enter_cgroups,
    )  # fmt: skip
    console.close()
    host.pid = process.pid
    _children[process.pid] = process


def is_ours(host: LabHost) -> bool:
    """True while host.pid is still systemd-nspawn running this host's root."""
    if host.pid is None:
        return False
    try:
        cmdline = Path(f"/proc/{host.pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(cmdline) and cmdline[0].endswith(b"systemd-nspawn") and host.root.encode() in cmdline


def _alive(pid: int | None) -> bool:
    """Running (not exited, not a zombie waiting to be reaped)."""
    if pid is None:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def write_known_hosts(hosts: list[LabHost]) -> None:
    KNOWN_HOSTS.write_text("".join(f"{h.address} {h.host_key}\n" for h in hosts))


def ssh_command(host: LabHost, *remote: str, known_hosts: Path = KNOWN_HOSTS, timeout: int = 5) -> list[str]:
    return [
        "ssh", "-i", str(LAB_KEY), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
        "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes",
        "-o", f"ConnectTimeout={timeout}", "-o", "LogLevel=ERROR", f"root@{host.address}", *remote,
    ]  # fmt: skip


def reachable(host: LabHost) -> bool:
    result = subprocess.run(ssh_command(host, "true"), capture_output=True, timeout=30, check=False)
    return result.returncode == 0


def wait_until_up(host: LabHost) -> None:
    deadline = time.monotonic() + BOOT_TIMEOUT
    while time.monotonic() < deadline:
        # Just after start /proc/PID/cmdline can read empty: only an exited process is a failure.
        if not _alive(host.pid):
            raise RuntimeError(f"{host.name}: systemd-nspawn exited; see {HOSTS / (host.name + '.console.log')}")
        if reachable(host):
            if host.init != "systemd":
                return
            state = subprocess.run(
                ssh_command(host, "systemctl", "is-system-running", "--wait"),
                capture_output=True, text=True, timeout=BOOT_TIMEOUT, check=False,
            ).stdout.strip()  # fmt: skip
            if state in ("running", "degraded"):
                return
        time.sleep(0.5)
    raise RuntimeError(f"{host.name}: not reachable on {host.address}:22 after {BOOT_TIMEOUT:.0f} s")


def _wait_gone(host: LabHost, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(host.pid):
            return True
        time.sleep(0.2)
    return not _alive(host.pid)


def container_init(nspawn_pid: int) -> int | None:
    """The container's PID 1 (systemd), as a host PID: nspawn's child."""
    try:
        children = Path(f"/proc/{nspawn_pid}/task/{nspawn_pid}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None


def power_off(host: LabHost) -> None:
    """`systemctl poweroff` inside; if that hangs, nspawn's own halt (SIGTERM), then its immediate
    termination (a second SIGTERM); last, SIGKILL to the container's init and to nspawn. Never
    SIGKILL nspawn alone: its container would live on, holding the host's address."""
    if is_ours(host):
        if host.address:
            inside = "systemctl poweroff" if host.init == "systemd" else "kill 1"
            subprocess.run(ssh_command(host, inside), capture_output=True, timeout=30, check=False)
        steps: list[tuple[signal.Signals | None, float]] = [
            (None, POWEROFF_TIMEOUT if host.address else 0),
            (signal.SIGTERM, 15),
            (signal.SIGTERM, 10),
            (signal.SIGKILL, 10),
        ]
        for sig, wait in steps:
            if sig is signal.SIGKILL:
                init = container_init(host.pid)  # type: ignore[arg-type]
                if init is not None:
                    os.kill(init, signal.SIGKILL)
            if sig is not None and is_ours(host):
                os.kill(host.pid, sig)  # type: ignore[arg-type]
            if _wait_gone(host, wait):
                break
    child = _children.pop(host.pid, None) if host.pid is not None else None
    if child is not None:
        child.wait(timeout=10)  # reap it: no zombie, no "still running" warning at exit
    host.pid = None


def remove(host: LabHost) -> None:
    shutil.rmtree(host.root, ignore_errors=True)
    remove_cgroups(host.name)
    network.remove_host(host.name)
