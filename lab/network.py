"""The lab's private network: a bridge on this machine and one network namespace per host.

Each host gets its own namespace (its own cni0, iptables, nftables and ports), joined to the
bridge by a veth pair, with an address from a private range no other network here uses. The
bridge's own address is where the control plane and the artifact mirror listen. Hosts get no
default route: they reach the lab network, their peers' pod networks and the service network,
nothing beyond this machine.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
from pathlib import Path

BRIDGE = os.environ.get("K8SW_LAB_BRIDGE", "k8sw-lab0")
SUBNET = ipaddress.ip_network(os.environ.get("K8SW_LAB_SUBNET", "10.240.0.0/24"))
GATEWAY = str(SUBNET.network_address + 1)  # the bridge: control plane and mirror
FIRST_HOST = 11  # hosts are .11, .12, ...
SERVICE_CIDR = "10.32.0.0/24"  # the lab cluster's services: reached through the kube-proxy of the node
# No default route: a host reaches the lab network and, through its own kube-proxy, services.
HOST_ROUTES = {SERVICE_CIDR: GATEWAY}
NETNS_DIR = Path("/run/netns")

# Per-namespace kernel settings a node needs. On a real host the install sets them; inside
# systemd-nspawn /proc/sys is read-only, so the lab sets them from outside, in the host's own
# namespace (real values, not stand-ins). bridge-nf-call-ip6tables (no IPv6 in the lab) is set
# against the program on purpose: the install cannot fix it from inside, and the suite checks
# that it says so, by name.
NETNS_SYSCTLS = {
    "net.bridge.bridge-nf-call-ip6tables": "0",
    "net.ipv4.ip_forward": "1",
    "net.bridge.bridge-nf-call-iptables": "1",
    "net.ipv4.conf.all.route_localnet": "1",  # kube-proxy (iptables mode) sets it
    "net.netfilter.nf_conntrack_tcp_timeout_established": "86400",  # kube-proxy's defaults
    "net.netfilter.nf_conntrack_tcp_timeout_close_wait": "3600",
}


def address_for(index: int) -> str:
    return str(SUBNET.network_address + FIRST_HOST + index)


def netns_name(host: str) -> str:
    return f"k8sw-{host}"


def netns_path(host: str) -> Path:
    return NETNS_DIR / netns_name(host)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def _exists(link: str) -> bool:
    return _ip("link", "show", link, check=False).returncode == 0


def ensure_bridge() -> None:
    if not _exists(BRIDGE):
        _ip("link", "add", BRIDGE, "type", "bridge")
    addresses = _ip("-o", "addr", "show", "dev", BRIDGE).stdout
    if f" {GATEWAY}/" not in addresses:
        _ip("addr", "add", f"{GATEWAY}/{SUBNET.prefixlen}", "dev", BRIDGE)
    _ip("link", "set", BRIDGE, "up")


def ensure_host(host: str, address: str, routes: dict[str, str]) -> Path:
    """The host's namespace, veth and address (idempotent); routes: destination -> via."""
    ensure_bridge()
    name = netns_name(host)
    if not netns_path(host).exists():
        _ip("netns", "add", name)
    inside = ["ip", "netns", "exec", name]
    if not _exists(name):  # host side named after the namespace; the peer is eth0 inside
        _ip("link", "add", name, "type", "veth", "peer", "name", "eth0", "netns", name)
    _ip("link", "set", name, "master", BRIDGE, "up")
    subprocess.run([*inside, "ip", "link", "set", "lo", "up"], check=True)
    subprocess.run([*inside, "ip", "addr", "replace", f"{address}/{SUBNET.prefixlen}", "dev", "eth0"], check=True)
    subprocess.run([*inside, "ip", "link", "set", "eth0", "up"], check=True)
    for destination, via in routes.items():
        subprocess.run([*inside, "ip", "route", "replace", destination, "via", via], check=True)
    for key, value in NETNS_SYSCTLS.items():
        subprocess.run([*inside, "sysctl", "-q", "-w", f"{key}={value}"], check=True, capture_output=True)
    return netns_path(host)


def remove_host(host: str) -> None:
    if _exists(netns_name(host)):
        _ip("link", "delete", netns_name(host), check=False)
    if netns_path(host).exists():
        _ip("netns", "delete", netns_name(host), check=False)


def hosts_present() -> list[str]:
    """Lab hosts that still have a namespace (a killed run's leftovers included)."""
    if not NETNS_DIR.exists():
        return []
    return sorted(p.name.removeprefix("k8sw-") for p in NETNS_DIR.iterdir() if p.name.startswith("k8sw-"))


def remove_bridge() -> None:
    if _exists(BRIDGE):
        _ip("link", "delete", BRIDGE, check=False)
