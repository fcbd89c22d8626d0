"""The lab's Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager and
kube-scheduler, real binaries (lab/build.py) run as processes on this machine.

The apiserver listens on, and advertises, the lab bridge's address (a 1.37 apiserver advertising
127.0.0.1 exits: the `kubernetes` Service may not point at loopback), so nodes in their own
network namespaces reach it and the `kubernetes` Service has endpoints. etcd and the
controllers' own ports stay on 127.0.0.1. It is set up as the program expects of a cluster:
bootstrap-token authentication, Node,RBAC authorization, NodeRestriction, and the
controller-manager signing with the cluster CA (the lab CA) with `tokencleaner` and
`bootstrapsigner` on. Everything it writes lives under CONTROL_PLANE; etcd's data is wiped on
`lab down`.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from lab import network
from lab.paths import ADMIN_KUBECONFIG, CONTROL_PLANE, LAB_CA_CERT, LAB_CA_KEY
from lab.pki import certificate, service_account_key, write_private

SERVICE_CIDR = network.SERVICE_CIDR
SERVICE_IP = "10.32.0.1"  # the `kubernetes` Service: in the apiserver's certificate
APISERVER_PORT = int(os.environ.get("K8SW_LAB_APISERVER_PORT", "6443"))
ETCD_PORTS = (12379, 12380)  # client, peer: on 127.0.0.1, away from a real etcd's 2379/2380
CONTROLLER_PORTS = {"kube-controller-manager": 10257, "kube-scheduler": 10259}
APISERVER_KUBELET_CLIENT = "kube-apiserver-kubelet-client"  # the program binds it to system:kubelet-api-admin
START_TIMEOUT = 90.0
PKI = CONTROL_PLANE / "pki"
ORDER = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")


class ControlPlaneError(RuntimeError):
    """A component did not start: the message names it and points at its log."""


def api_server_url() -> str:
    return f"https://{network.GATEWAY}:{APISERVER_PORT}"


# ------------------------------------------------------------------ credentials


@dataclass(frozen=True)
class Identity:
    file: str  # pki/<file>.crt and .key
    common_name: str
    organizations: tuple[str, ...] = ()
    server_names: tuple[str, ...] = ()


def identities() -> tuple[Identity, ...]:
    return (
        Identity(
            "apiserver",
            "kube-apiserver",
            server_names=(
                network.GATEWAY,
                SERVICE_IP,
                "127.0.0.1",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
        ),
        Identity("apiserver-kubelet-client", APISERVER_KUBELET_CLIENT),
        Identity("admin", "k8s-workers-lab-admin", ("system:masters",)),
        # What a platform team gives the program: only the groups rbac/program-rbac.yaml binds.
        Identity("deployer", "k8s-workers-lab-deployer", ("k8s-workers:deployer",)),
        Identity("previewer", "k8s-workers-lab-previewer", ("k8s-workers:previewer",)),
        Identity("controller-manager", "system:kube-controller-manager"),
        Identity("scheduler", "system:kube-scheduler"),
    )


def _ca_fingerprint() -> str:
    return hashlib.sha256(LAB_CA_CERT.read_bytes()).hexdigest()


def kubeconfig(user: str, cert_pem: str, key_pem: str, server: str) -> str:
    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "lab", "cluster": {"server": server, "certificate-authority-data": b64(LAB_CA_CERT.read_text())}}],
            "users": [{"name": user, "user": {"client-certificate-data": b64(cert_pem), "client-key-data": b64(key_pem)}}],
            "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": user}}],
            "current-context": "lab",
        },
        sort_keys=False,
    )  # fmt: skip


def ensure_credentials() -> None:
    """Certificates, keys and kubeconfigs, made once per lab CA (and remade when it changes)."""
    stamp = PKI / "ca.sha256"
    made = all((PKI / f"{i.file}.crt").exists() for i in identities()) and ADMIN_KUBECONFIG.exists()
    if stamp.exists() and stamp.read_text() == _ca_fingerprint() and made:
        return
    shutil.rmtree(PKI, ignore_errors=True)
    PKI.mkdir(parents=True, mode=0o700)
    ca_cert, ca_key = LAB_CA_CERT.read_text(), LAB_CA_KEY.read_text()
    for identity in identities():
        cert, key = certificate(
            ca_cert, ca_key, identity.common_name, 365,
            organizations=identity.organizations, server_names=identity.server_names,
        )  # fmt: skip
        (PKI / f"{identity.file}.crt").write_text(cert)
        write_private(PKI / f"{identity.file}.key", key)
    public, private = service_account_key()
    (PKI / "sa.pub").write_text(public)
    write_private(PKI / "sa.key", private)
    for file in ("admin", "controller-manager", "scheduler", "deployer", "previewer"):  # the clients' kubeconfigs
        text = kubeconfig(file, (PKI / f"{file}.crt").read_text(), (PKI / f"{file}.key").read_text(), api_server_url())
        write_private(CONTROL_PLANE / f"{file}.conf", text)
    stamp.write_text(_ca_fingerprint())


# ------------------------------------------------------------------ processes


def commands(bin_dir: dict[str, Path]) -> dict[str, list[str]]:
    """Each component's command line; bin_dir: binary name -> path."""
    ca, etcd_client, etcd_peer = str(LAB_CA_CERT), *ETCD_PORTS
    pki = PKI
    controller_common = ["--bind-address=127.0.0.1", "--leader-elect=false", "--profiling=false"]
    return {
        "etcd": [
            str(bin_dir["etcd"]), "--name=lab", f"--data-dir={CONTROL_PLANE / 'etcd-data'}",
            f"--listen-client-urls=http://127.0.0.1:{etcd_client}", f"--advertise-client-urls=http://127.0.0.1:{etcd_client}",
            f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}", f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
            f"--initial-cluster=lab=http://127.0.0.1:{etcd_peer}", "--listen-metrics-urls=", "--log-level=warn",
        ],
        "kube-apiserver": [
            str(bin_dir["kube-apiserver"]),
            f"--advertise-address={network.GATEWAY}", f"--bind-address={network.GATEWAY}", f"--secure-port={APISERVER_PORT}",
            f"--etcd-servers=http://127.0.0.1:{etcd_client}",
            f"--client-ca-file={ca}", f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
            "--tls-min-version=VersionTLS12", "--anonymous-auth=false", "--profiling=false",
            "--enable-bootstrap-token-auth=true", "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
            "--allow-privileged=true", f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}", f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            f"--kubelet-certificate-authority={ca}", "--kubelet-preferred-address-types=InternalIP",
            f"--cert-dir={CONTROL_PLANE / 'apiserver-certs'}",
            # Webhooks and aggregated APIs at their endpoints' pod IPs, not the Service's cluster IP: this
            # machine runs no kube-proxy (the conformance run routes the pod networks here).
            "--enable-aggregator-routing=true",
        ],
        "kube-controller-manager": [
            str(bin_dir["kube-controller-manager"]), *controller_common,
            f"--secure-port={CONTROLLER_PORTS['kube-controller-manager']}", f"--cert-dir={CONTROL_PLANE / 'cm-certs'}",
            *(f"--{kind}-kubeconfig={CONTROL_PLANE / 'controller-manager.conf'}" for kind in ("authentication", "authorization")),
            f"--kubeconfig={CONTROL_PLANE / 'controller-manager.conf'}", "--cluster-name=lab",
            f"--cluster-signing-cert-file={ca}", f"--cluster-signing-key-file={LAB_CA_KEY}",
            "--controllers=*,bootstrapsigner,tokencleaner", f"--root-ca-file={ca}",
            f"--service-account-private-key-file={pki / 'sa.key'}", "--use-service-account-credentials=true",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
        ],
        "kube-scheduler": [
            str(bin_dir["kube-scheduler"]), *controller_common,
            f"--secure-port={CONTROLLER_PORTS['kube-scheduler']}", f"--cert-dir={CONTROL_PLANE / 'scheduler-certs'}",
            *(f"--{kind}-kubeconfig={CONTROL_PLANE / 'scheduler.conf'}" for kind in ("authentication", "authorization")),
            f"--kubeconfig={CONTROL_PLANE / 'scheduler.conf'}",
        ],
    }  # fmt: skip


def ports() -> dict[str, tuple[str, int]]:
    return {
        "etcd": ("127.0.0.1", ETCD_PORTS[0]),
        "etcd peer": ("127.0.0.1", ETCD_PORTS[1]),
        "kube-apiserver": (network.GATEWAY, APISERVER_PORT),
        **{name: ("127.0.0.1", port) for name, port in CONTROLLER_PORTS.items()},
    }


def _port_in_use(address: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((address, port)) == 0


def ensure_ports_free(name: str, listening: dict[str, tuple[str, int]]) -> None:
    """Before starting `name`: each of its ports free, or an error saying which and what to do."""
    for what, (address, port) in listening.items():
        if what.split()[0] == name and _port_in_use(address, port):
            raise ControlPlaneError(
                f"{what}: {address}:{port} is already in use by another program; stop it "
                "(K8SW_LAB_APISERVER_PORT moves the apiserver) and run `lab up` again"
            )


def is_ours(name: str, pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return (
        state not in ("Z", "X")
        and cmdline[0].endswith(name.encode())
        and str(CONTROL_PLANE).encode() in b" ".join(cmdline)
    )


_children: dict[int, subprocess.Popen] = {}


def _start(name: str, argv: list[str]) -> int:
    log = open(CONTROL_PLANE / f"{name}.log", "wb")  # noqa: SIM115 - handed to the child; one run per log
    process = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    log.close()
    _children[process.pid] = process
    return process.pid


def _alive(name: str, pid: int) -> bool:
    """Still running: a child of ours is asked directly (its /proc cmdline can read empty just after
    the fork), anything else by its command line."""
    child = _children.get(pid)
    return child.poll() is None if child is not None else is_ours(name, pid)


def _log_tail(name: str, lines: int = 15) -> str:
    try:
        return "\n".join((CONTROL_PLANE / f"{name}.log").read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _admin_context() -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(LAB_CA_CERT))
    context.load_cert_chain(str(PKI / "admin.crt"), str(PKI / "admin.key"))
    return context


def _healthy(name: str) -> bool:
    try:
        if name == "etcd":
            url, context = f"http://127.0.0.1:{ETCD_PORTS[0]}/health", None
        elif name == "kube-apiserver":
            url, context = f"{api_server_url()}/readyz", _admin_context()
        else:  # the controllers answer /healthz to anyone on their loopback port
            url = f"https://127.0.0.1:{CONTROLLER_PORTS[name]}/healthz"
            context = ssl._create_unverified_context()
        with urllib.request.urlopen(url, timeout=3, context=context) as response:
            return response.status == 200
    except OSError:
        return False


def _wait(name: str, pid: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if _healthy(name):
            return
        if not _alive(name, pid):
            raise ControlPlaneError(
                f"{name} exited while starting; {CONTROL_PLANE / (name + '.log')} ends:\n{_log_tail(name)}"
            )
        time.sleep(0.3)
    raise ControlPlaneError(f"{name} not healthy after {START_TIMEOUT:.0f} s; log:\n{_log_tail(name)}")


def up(pids: dict[str, int], bin_dir: dict[str, Path]) -> dict[str, int]:
    """Start what is not running (in order, each healthy before the next). `pids` (name -> PID) is
    updated as each starts, so a caller that saves it on failure knows what to stop."""
    CONTROL_PLANE.mkdir(parents=True, exist_ok=True)
    ensure_credentials()
    for name, pid in list(pids.items()):
        if not is_ours(name, pid):
            del pids[name]
    recorded = set(pids.values())
    stop({p.name: p.pid for p in orphans() if p.pid not in recorded})  # a killed run's leftovers
    argv = commands(bin_dir)
    for name in ORDER:
        if name in pids and _healthy(name):
            continue
        stop({name: pids.pop(name)} if name in pids else {})
        ensure_ports_free(name, ports())
        pids[name] = _start(name, argv[name])
        _wait(name, pids[name])
    return pids


@dataclass(frozen=True)
class Orphan:
    name: str
    pid: int


def orphans() -> list[Orphan]:
    """Control-plane processes of the lab that no state records (a run killed mid-`up`)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        name = Path(cmdline[0].decode(errors="replace")).name
        if name in ORDER and is_ours(name, int(entry.name)):
            found.append(Orphan(name, int(entry.name)))
    return found


def stop(pids: dict[str, int], wipe: bool = False) -> None:
    """Stop by recorded PID (checked to still be ours), last started first."""
    for name in reversed(ORDER):
        pid = pids.get(name)
        if is_ours(name, pid):
            os.kill(pid, signal.SIGTERM)  # type: ignore[arg-type]
            deadline = time.monotonic() + 15
            while is_ours(name, pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if is_ours(name, pid):
                os.kill(pid, signal.SIGKILL)  # type: ignore[arg-type]
        child = _children.pop(pid, None) if pid is not None else None
        if child is not None:
            child.wait(timeout=10)
    if wipe:
        shutil.rmtree(CONTROL_PLANE / "etcd-data", ignore_errors=True)


def running(pids: dict[str, int]) -> dict[str, bool]:
    return {name: is_ours(name, pids.get(name)) and _healthy(name) for name in ORDER}
