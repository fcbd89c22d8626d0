"""A no-op `pulumi preview` of a stack whose state already holds N joined nodes, measured (not a
timed test), with the cluster reachable and without.

The state is built honestly, by a real `pulumi up` of the program: against the lab's real control
plane, with hand-made Node objects standing in for the kubelets, and a stand-in SSH server on
127.0.0.1 that accepts every command, reads its whole stdin and exits 0 (no install script runs:
this measures the engine and the program, not hosts). `servingCertificates: self-signed` (no
kubelet asks for a serving certificate here); `maxUnavailable: 100%`.

Usage: venv/bin/python benchmarks/bench_engine_noop.py [--sizes 10,100,250] [--max-unavailable 100%]
[--parallel N]
(as root: the lab's control plane; the engine on PATH)
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import asyncssh
import yaml
from kubernetes import client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_engine_scale import measured, sampled
from k8s_workers.cluster_api import api_client
from k8s_workers.decisions.preview_summary import comment, steps_from, summarize
from lab import cluster, control_plane, mirror, pins, stack
from lab.__main__ import down, up
from lab.paths import ADMIN_KUBECONFIG
from tests.engine.pulumi_cli import Project, missing

PORT = 22022


ANSWERING = threading.Event()  # cleared: the stand-in drops every connection (hosts unreachable)


def stand_in_ssh_server(port: int) -> str:
    """An SSH server on 127.0.0.1 that runs nothing: each session's stdin is read to its end and
    the command exits 0 (a drift check answers as a clean host would). Returns its host key
    (OpenSSH form) for the nodes' `ssh.hostKey`."""
    key = asyncssh.generate_private_key("ssh-ed25519")
    ANSWERING.set()

    class Accepting(asyncssh.SSHServer):
        def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
            if not ANSWERING.is_set():
                conn.abort()

        def begin_auth(self, username: str) -> bool:
            return True

        def public_key_auth_supported(self) -> bool:
            return True

        def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
            return True

    async def session(process: asyncssh.SSHServerProcess) -> None:
        await process.stdin.read()
        if "drift check" in (process.command or ""):
            process.stdout.write("checked 30\n")
        process.exit(0)

    ready = threading.Event()

    def serve() -> None:
        loop = asyncio.new_event_loop()
        loop.run_until_complete(
            asyncssh.create_server(Accepting, "127.0.0.1", port, server_host_keys=[key], process_factory=session)
        )
        ready.set()
        loop.run_forever()

    threading.Thread(target=serve, daemon=True).start()
    ready.wait(30)
    return key.export_public_key().decode().strip()


def hand_made_nodes(names: list[str]) -> None:
    """Node objects as a joined kubelet would have registered them (name and kubelet version)."""
    core = client.CoreV1Api(api_client(str(ADMIN_KUBECONFIG)))
    for name in names:
        core.create_node({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
        status = {"status": {"nodeInfo": {"kubeletVersion": pins.KUBERNETES}}}
        core.patch_node_status(name, status)


def raw_config(host_key: str, max_unavailable: int | str = "100%") -> dict[str, Any]:
    raw = stack.lab_config([], mirror.publish())
    raw["cluster"]["binaries"]["artifacts"].pop("cni-plugins")
    raw["cluster"]["cni"] = {"mode": "calico"}
    raw["cluster"]["servingCertificates"] = "self-signed"
    raw["cluster"]["rollout"] = {"maxUnavailable": max_unavailable}
    raw["defaults"]["ssh"].update(host="127.0.0.1", port=PORT, hostKey=host_key)
    raw["inventory"] = "inventory.yaml"
    raw.pop("nodes")
    return raw


def one_size(
    nodes: int, host_key: str, workdir: Path, max_unavailable: int | str = "100%", parallel: list[str] | None = None
) -> tuple[Project, dict[str, dict[str, Any]]]:
    names = [f"fake-{i:04d}" for i in range(nodes)]
    hand_made_nodes(names)
    first = ipaddress.IPv4Address("198.18.0.1")  # benchmarking range: never contacted (ssh.host is 127.0.0.1)
    inventory = [{"name": n, "address": str(first + i)} for i, n in enumerate(names)]
    project = Project(workdir, "noop", None, kubeconfig=str(ADMIN_KUBECONFIG))
    (project.dir / "inventory.yaml").write_text(yaml.safe_dump({"nodes": inventory}, sort_keys=False))
    raw = raw_config(host_key, max_unavailable)
    project.stack_file.write_text(stack.stack_document(raw))
    parallel = parallel or []
    results = {"first up (builds the state)": measured(project, "up", "--yes", "--skip-preview", *parallel)}
    results["no-op preview, cluster reachable"] = measured(project, "preview", *parallel)
    # Every node records its services at the end of the first `up`: in a no-op `up` none waits.
    results["no-op up, cluster reachable"] = measured(project, "up", "--yes", "--skip-preview", *parallel)
    results["one kubelet setting changed, preview --diff"] = change_preview(project, raw)
    # Refresh: one drift-check session per node (the stand-in answers as a clean host), then with
    # every host dropping the connection (each node `unknown`, nothing fails).
    results["refresh, hosts answering"] = measured(project, "refresh", "--yes", "--skip-preview", *parallel)
    ANSWERING.clear()
    results["refresh, hosts unreachable"] = measured(project, "refresh", "--yes", "--skip-preview", *parallel)
    ANSWERING.set()
    # The cluster side gone by hand (the state stays, for the preview without a cluster), so the
    # next size's stack can create its own bindings.
    cluster.kubectl("delete", "nodes", "--all", "--wait=false")
    for binding in cluster.get("clusterrolebindings")["items"]:
        if binding["metadata"]["name"].startswith("k8s-workers:"):  # what ClusterBootstrap made
            cluster.kubectl("delete", "clusterrolebinding", binding["metadata"]["name"])
    cluster.kubectl("delete", "secret", "-n", "kube-system", "--field-selector", "type=bootstrap.kubernetes.io/token")
    return project, results


def change_preview(project: Project, raw: dict[str, Any]) -> dict[str, Any]:
    """What a pull request changing one kubelet setting on every node would be commented: the
    `--diff` text and the comment the preview workflow builds from it (summary first, cut to fit)."""
    changed = {**raw, "defaults": {**raw["defaults"], "maxPods": 99}}
    project.stack_file.write_text(stack.stack_document(changed))
    command, log = project.command("preview", "--diff")
    returncode, output, seconds, peak_mib = sampled(command, project.dir, project.env)
    project.stack_file.write_text(stack.stack_document(raw))  # back: the later previews are no-ops
    result = project._result(("preview", "--diff"), returncode, output, log, seconds)
    if returncode != 0:
        raise SystemExit(f"pulumi preview --diff failed:\n{output[-3000:]}")
    steps = steps_from("\n".join(json.dumps(e) for e in result.events))
    summary = summarize(steps).lines("noop")
    text = comment("noop", summary, output, "preview-noop")
    nodes = sum(1 for s in steps if s.name.endswith("-membership") and s.op == "update")
    lines = output.count("\n")
    summary_chars = len("\n".join(summary))
    print(f"summary ({summary_chars} characters):", *summary, sep="\n", flush=True)
    return {
        "seconds": seconds,
        "peak_mib": peak_mib,
        "resources": sum(result.changes().values()),
        "changes": f"{lines} lines, {lines / max(nodes, 1):.1f} per node; comment {len(text)} characters"
        + (f", {text.rsplit('Cut at ', 1)[1].split(' lines')[0]} lines shown" if "Cut at " in text else ", whole"),
    }


def row(size: int, run: str, r: dict[str, Any]) -> str:
    return f"| {size} ({r['resources']}) | {run} | {r['seconds']:.1f} | {r['peak_mib']:.0f} | {r['changes']} |"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10,100,250")
    parser.add_argument("--max-unavailable", default="100%")
    parser.add_argument("--parallel", type=int, default=None, help="pulumi's --parallel (default: the engine's)")
    args = parser.parse_args()
    parallel = ["--parallel", str(args.parallel)] if args.parallel else []
    if (why := missing()) is not None:
        raise SystemExit(why)
    down()
    state = up(nodes=0)
    host_key = stand_in_ssh_server(PORT)
    print("| nodes (resources) | run | seconds | peak MiB | changes |")
    print("|---:|---|---:|---:|---|")
    try:
        with tempfile.TemporaryDirectory(prefix="bench-noop-") as workdir:
            projects = {}
            for size in map(int, args.sizes.split(",")):
                max_unavailable = int(args.max_unavailable) if args.max_unavailable.isdigit() else args.max_unavailable
                projects[size], results = one_size(
                    size, host_key, Path(workdir) / f"n{size}", max_unavailable, parallel
                )
                for run, r in results.items():
                    print(row(size, run, r), flush=True)
            control_plane.stop(state.control_plane)  # no cluster from here on (its kubeconfig stays)
            for size, project in projects.items():
                print(row(size, "no-op preview, no cluster", measured(project, "preview", *parallel)), flush=True)
    finally:
        down()


if __name__ == "__main__":
    main()
