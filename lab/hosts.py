"""Lab hosts: a copy of the root per host, booted by systemd-nspawn, reached by SSH on 127.0.0.N.

Processes are only ever signalled by the PID the lab recorded, after checking that the PID
still runs systemd-nspawn on that host's root (PIDs get reused).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

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
    """Hosts are 127.0.0.2, 127.0.0.3, ... (127.0.0.1 is the mirror's)."""
    return f"127.0.0.{index + 2}"


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
    HOSTS.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", "--reflink=auto", str(base), str(root)], check=True)
    (root / "etc/hostname").write_text(f"{name}\n")
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


def boot(host: LabHost) -> None:
    command = [
        "systemd-nspawn", "--directory", host.root, "--register=no", "--keep-unit",
        f"--machine={host.name}", f"--hostname={host.name}", "--console=passive",
    ]  # fmt: skip
    if host.init == "systemd":
        command.insert(1, "--boot")
    else:  # sshd as PID 1: a reachable host that is not run by systemd
        command += ["/bin/sh", "-c", "mkdir -p /run/sshd && exec /usr/sbin/sshd -D -e"]
    console = open(HOSTS / f"{host.name}.console.log", "ab")  # noqa: SIM115 - handed to the child
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT, start_new_session=True
    )
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
