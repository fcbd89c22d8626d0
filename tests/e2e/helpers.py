"""What the lab suite (and the engine suite on the lab) asks of hosts and of the cluster."""

from __future__ import annotations

import hashlib
import shlex
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from k8s_workers.config.loader import StackConfig
from k8s_workers.scripts.install_plan import NodePlan
from lab import cluster, pins, remote
from lab.hosts import LabHost
from lab.install import NodeJob, install_jobs, issue_tokens, register_all, run_all

SERVICES = ("containerd", "kubelet", "kube-proxy")
SWAP_LINE = "/swapfile none swap sw 0 0"


def sha(data: str | bytes) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def install(jobs: list[NodeJob]) -> dict[str, remote.RemoteResult]:
    results = run_all(jobs)
    failures = [str(r) for r in results.values() if isinstance(r, remote.HostError)]
    assert not failures, "\n".join(failures)
    return results  # type: ignore[return-value]


def join(config: StackConfig, hosts: list[LabHost]) -> dict[str, remote.RemoteResult]:
    """What `pulumi up` does for new nodes: tokens, installs (Ready on return), registrations."""
    issue_tokens(config, hosts)
    results = install(install_jobs(config, hosts))
    registered = register_all(config, hosts)
    failures = [f"{name}: {r}" for name, r in registered.items() if isinstance(r, Exception)]
    assert not failures, "\n".join(failures)
    return results


def host_files(host: LabHost, paths: list[str]) -> dict[str, tuple[str, ...] | None]:
    """path -> (mode, owner, group, inode, mtime, sha256), or None when missing: one SSH session."""
    quoted = " ".join(shlex.quote(p) for p in paths)
    out = remote.shell(
        host,
        f'for p in {quoted}; do if [ -e "$p" ]; then '
        'printf \'%s\\t%s %s\\n\' "$p" "$(stat -c \'%a %U %G %i %.9Y\' "$p")" "$(sha256sum < "$p" | cut -d\' \' -f1)"; '
        "else printf '%s\\tMISSING\\n' \"$p\"; fi; done",
    )
    result: dict[str, tuple[str, ...] | None] = {}
    for line in out.splitlines():
        path, _, rest = line.partition("\t")
        result[path] = None if rest == "MISSING" else tuple(rest.split())
    return result


def all_paths(plan: NodePlan) -> list[str]:
    paths = [f.path for f in plan.files]
    for artifact in plan.artifacts:
        if artifact.archive_dir is None:
            paths.append(f"{artifact.dest_dir}/{artifact.name}")
    paths += ["/usr/local/bin/containerd", "/usr/local/bin/containerd-shim-runc-v2", "/opt/cni/bin/bridge"]
    return paths


def main_pids(host: LabHost) -> dict[str, str]:
    out = remote.shell(host, "systemctl show -p MainPID --value " + " ".join(SERVICES))
    return dict(zip(SERVICES, out.split(), strict=True))


def command_lines(host: LabHost) -> dict[str, list[str]]:
    """Each service's running command line, read from /proc of its main process."""
    script = (
        "for s in " + " ".join(SERVICES) + "; do "
        'pid=$(systemctl show -p MainPID --value "$s"); printf "%s\\t" "$s"; '
        "tr '\\0' '\\t' < /proc/$pid/cmdline; echo; done"
    )
    lines = {}
    for line in remote.shell(host, script).splitlines():
        service, *argv = [part for part in line.split("\t") if part]
        lines[service] = argv
    return lines


def node_ready_since(name: str) -> str:
    """The Ready condition's lastTransitionTime: unchanged while the Node stays Ready."""
    node = cluster.nodes()[name]
    (ready,) = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert ready["status"] == "True", (name, ready)
    return ready["lastTransitionTime"]


# Everything a node could leave behind, read in one SSH session; paths under noisy system
# folders (journal, sshd's and systemd's own state, apt's daily timers' lock and lists: a long
# session saw /var/lib/apt/daily_lock appear; the install never uses apt) are left out.
SNAPSHOT = r"""
echo '## files'
find / /run -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /tmp -o -path /var/tmp \
  -o -path /var/log/journal -o -path /run/log -o -path /run/systemd -o -path /run/user \
  -o -path /var/lib/systemd -o -path /var/lib/apt -o -path /run/sshd -o -path /run/k8sw-lab -o -path /var/cache \
  -o -path /var/log/wtmp -o -path /var/log/btmp -o -path /var/log/lastlog -o -path /run/utmp \
  -o -path /root/.ssh -o -path /run/lock \) -prune -o -print | sort
echo '## mounts'
findmnt -rn -o TARGET | grep -vE '^/(proc|sys|dev)(/|$)' | sort
echo '## links'
ip -o link | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }' | sort
echo '## routes'
ip route | sort
echo '## netns'
ls /run/netns 2>/dev/null | sort
echo '## iptables'
{ iptables-save; ip6tables-save; } 2>/dev/null | grep -E '^[:*-]' | grep -v '^-A ' | sed 's/ \[.*//' | sort -u
echo '## iptables-rules'
{ iptables-save; ip6tables-save; } 2>/dev/null | grep '^-A ' | sort
echo '## nft'
nft list tables 2>/dev/null | sort
echo '## units'
systemctl list-units --all --plain --no-legend 2>/dev/null | awk '{print $1}' | sort
systemctl list-unit-files --no-legend 2>/dev/null | awk '{print $1}' | sort
echo '## processes'
ps -eo comm= | sort -u
"""


@dataclass(frozen=True)
class Snapshot:
    sections: dict[str, frozenset[str]]

    def added_since(self, before: Snapshot) -> dict[str, list[str]]:
        return {
            name: sorted(lines - before.sections.get(name, frozenset()))
            for name, lines in self.sections.items()
            if lines - before.sections.get(name, frozenset())
        }


def snapshot(host: LabHost) -> Snapshot:
    sections: dict[str, set[str]] = {}
    current = ""
    for line in remote.shell(host, SNAPSHOT).splitlines():
        if line.startswith("## "):
            current = line[3:]
            sections.setdefault(current, set())
        elif line.strip():
            sections[current].add(line.strip())
    return Snapshot({k: frozenset(v) for k, v in sections.items()})


def wait_for(what: str, check, timeout: float = 120, every: float = 1.0):  # type: ignore[no-untyped-def]
    """Poll `check()` until it returns something truthy; its last value in the failure message."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"{what}: not after {timeout:.0f} s (last: {value!r})")


# ------------------------------------------------------------------ a workload

NAMESPACE = "k8sw-e2e"
PORT = 8080


def pod_manifest(name: str, node: str, args: list[str] | None = None) -> dict[str, Any]:
    env = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
    ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": "echo" if args is None else "client"}},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node},  # placed by the real scheduler
            "restartPolicy": "Always" if args is None else "Never",
            # The server lingers 3 s after SIGTERM (lab/images/echo); clients exit by themselves.
            "terminationGracePeriodSeconds": 10 if args is None else 1,
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": "echo",
                    "image": pins.WORKLOAD_IMAGE,
                    "imagePullPolicy": "Never",  # imported on each node: no registry is reachable
                    "args": args or [],
                    "env": env,
                    "ports": [] if args else [{"containerPort": PORT}],
                }
            ],
        },
    }


def pods_with(selector: str) -> dict[str, dict[str, Any]]:
    return {p["metadata"]["name"]: p for p in cluster.get("pods", "-n", NAMESPACE, "-l", selector)["items"]}


def fresh_namespace() -> None:
    """The test namespace, empty: whatever an earlier test left there is gone."""
    cluster.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true", timeout=180)
    cluster.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}])
    wait_for(
        "the namespace's default ServiceAccount",
        lambda: cluster.kubectl("get", "sa", "default", "-n", NAMESPACE, check=False).returncode == 0,
    )


def run_workload(nodes: list[str]) -> tuple[dict[str, str], str]:
    """An echo server pod on every node and a Service over them; (node -> pod IP, Service IP)."""
    fresh_namespace()
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "echo", "namespace": NAMESPACE},
        "spec": {"selector": {"app": "echo"}, "ports": [{"port": 80, "targetPort": PORT}]},
    }
    cluster.apply([service, *(pod_manifest(f"echo-{node}", node) for node in nodes)])

    def running() -> dict[str, str] | None:
        pods = pods_with("app=echo")
        ready = {
            p["spec"].get("nodeName", ""): p["status"].get("podIP", "")
            for p in pods.values()
            if any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
        }
        return ready if set(ready) == set(nodes) else None

    ips = wait_for("an echo pod Ready on every node", running, timeout=120)
    service_ip = cluster.get("service", "echo", "-n", NAMESPACE)["spec"]["clusterIP"]
    return ips, service_ip


def client_exit_codes(clients: dict[str, tuple[str, str, str]]) -> dict[str, int]:
    """name -> (node, URL, expected text): each runs to completion; name -> its exit code."""
    cluster.apply(
        pod_manifest(name, node, ["-get", url, "-expect", expect]) for name, (node, url, expect) in clients.items()
    )

    def finished() -> dict[str, int] | None:
        codes = {}
        for name, pod in pods_with("app=client").items():
            for status in pod["status"].get("containerStatuses", []):
                terminated = status.get("state", {}).get("terminated")
                if terminated:
                    codes[name] = terminated["exitCode"]
        return codes if set(clients) <= set(codes) else None

    return wait_for("client pods finished", finished, timeout=120)


def newest_first(csrs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(csrs, key=lambda c: c["metadata"]["creationTimestamp"], reverse=True)


def serving_csrs(node: str) -> list[dict[str, Any]]:
    """The node's kubelet-serving requests, newest first (earlier installs left theirs)."""
    return newest_first([
        c for c in cluster.get("csr")["items"]
        if c["spec"]["signerName"] == "kubernetes.io/kubelet-serving" and c["spec"]["username"] == f"system:node:{node}"
    ])  # fmt: skip


def run_deployment(name: str, replicas: int, min_available: int, node: str | None = None) -> str:
    """A Deployment of echo servers (spread over nodes, or all on `node`), a PodDisruptionBudget
    keeping `min_available` of them, and a Service; returns the Service's IP once all are Ready.
    In the test namespace as it is (see fresh_namespace)."""
    template = pod_manifest(name, node or "", None)
    spec = template["spec"]
    if node is None:
        del spec["nodeSelector"]
        spec["topologySpreadConstraints"] = [{
            "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"app": name}},
        }]  # fmt: skip
    labels = {"app": name}
    cluster.apply([
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NAMESPACE},
         "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels}, "spec": spec}}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name, "namespace": NAMESPACE},
         "spec": {"minAvailable": min_available, "selector": {"matchLabels": labels}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NAMESPACE},
         "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": PORT}]}},
    ])  # fmt: skip
    wait_for(f"{replicas} {name} pods Ready", lambda: len(ready_pods(name)) == replicas, timeout=180)
    return cluster.get("service", name, "-n", NAMESPACE)["spec"]["clusterIP"]


def ready_pods(app: str) -> dict[str, str]:
    """pod name -> node, for the Ready pods of the app (terminating ones excluded)."""
    return {
        p["metadata"]["name"]: p["spec"].get("nodeName", "")
        for p in pods_with(f"app={app}").values()
        if not p["metadata"].get("deletionTimestamp")
        and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
    }


@dataclass
class Watch:
    """Polls while a rollout runs: how many Nodes are cordoned at once, and whether the Service answers."""

    service_ip: str
    via: object  # a lab host whose kube-proxy is not restarted by the change
    cordoned_max: int = 0
    cordoned_seen: set[str] = field(default_factory=set)
    probes: int = 0
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self._stop.is_set():
            cordoned = {n for n, node in cluster.nodes().items() if node["spec"].get("unschedulable")}
            self.cordoned_seen |= cordoned
            self.cordoned_max = max(self.cordoned_max, len(cordoned))
            moment = time.strftime("%H:%M:%S")  # when the probe started: curl may retry for seconds
            result = remote.run(
                self.via,  # type: ignore[arg-type]
                f"curl -sS -m 2 --retry 3 --retry-connrefused --retry-delay 0 http://{self.service_ip}/",
            )
            self.probes += 1
            if result.returncode != 0 or "pod=" not in result.stdout:
                detail = result.stderr.strip().splitlines()[-1:] or [result.stdout.strip()]
                self.failures.append(f"{moment} (cordoned: {sorted(cordoned)}) {detail[0]}")
            time.sleep(0.2)

    def __enter__(self) -> Watch:
        self._thread = threading.Thread(target=self.run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
