"""`make demo`: three lab hosts made worker nodes by `pulumi up` (the real CLI), shown working, and
the commands to try next. `make demo-down` takes it all away.

The demo's stack is the lab's (`Pulumi.lab.yaml`, written by `lab up`) on a local file backend in
the lab cache, so nothing here needs an account or touches the user's own Pulumi backend. Re-running
is fast: the lab keeps what is healthy, the build cache holds the binaries and `up` plans nothing.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from k8s_workers.config.loader import load_config
from lab import build, cluster, images, install, pins, stack, tools
from lab.hosts import LabHost
from lab.paths import ADMIN_KUBECONFIG, BUILD, CACHE

NODES = 3
STACK = "lab"
BACKEND = CACHE / "demo" / "state"  # a file backend: the demo's state, on this machine only
IDENTITY = CACHE / "demo" / "hosts"  # which lab hosts the state describes (their host keys, hashed)
PASSPHRASE = "k8s-workers-lab-demo"  # protects only the lab stack's secrets, which only this lab uses
NAMESPACE = "k8sw-demo"
COLD_BUILD = "about 20 minutes"  # measured: every lab binary from the Go module proxy, nothing cached
ENGINE_INSTALL = Path(__file__).resolve().parent.parent.parent / "shared" / "engine" / "install"


class DemoError(RuntimeError):
    """A problem the user fixes: the message says how."""


def pulumi_cli() -> str | None:
    """The `pulumi` on PATH, or in ~/.pulumi/bin where its installer puts it."""
    home = Path(os.environ.get("PULUMI_HOME", Path.home() / ".pulumi")) / "bin" / "pulumi"
    return shutil.which("pulumi") or (str(home) if home.is_file() else None)


def prerequisites() -> str:
    """The `pulumi` to run; raises naming each missing prerequisite and its fix."""
    problems = []
    if os.geteuid() != 0:
        problems.append(
            "the lab needs root: it boots hosts with systemd-nspawn in network namespaces. Run `sudo make demo`."
        )
    absent = tools.missing()
    if absent:
        problems.append(f"the lab needs {', '.join(absent)}: install {tools.how_to_install(absent)}.")
    cli = pulumi_cli()
    if cli is None:
        how = (
            f"`{ENGINE_INSTALL} ~/.pulumi`, then `export PATH=$HOME/.pulumi/bin:$PATH`"
            if ENGINE_INSTALL.exists()
            else "https://www.pulumi.com/docs/install/ (`curl -fsSL https://get.pulumi.com | sh`)"
        )
        problems.append(f"no `pulumi` CLI on PATH (nor in ~/.pulumi/bin). Install one: {how}; then `make demo` again.")
    if problems:
        raise DemoError("make demo cannot start:\n" + "\n".join(f"  - {p}" for p in problems))
    return cli  # type: ignore[return-value]


def environment(cli: str) -> dict[str, str]:
    """What every `pulumi` and `kubectl` of the demo runs with (printed for the user's own commands)."""
    return {
        "PULUMI_BACKEND_URL": f"file://{BACKEND}",
        "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
        "KUBECONFIG": str(ADMIN_KUBECONFIG),
        "PATH": f"{Path(cli).parent}:{os.environ.get('PATH', '')}",
    }


def _pulumi(cli: str, *args: str, capture: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **environment(cli), "PULUMI_SKIP_UPDATE_CHECK": "true"}
    return subprocess.run(
        [cli, *args, "--non-interactive"],
        cwd=stack.PROJECT_DIR,
        env=env,
        text=True,
        capture_output=capture,
        check=False,
    )


def _step(message: str) -> None:
    print(f"\ndemo: {message}", flush=True)


def announce_build() -> None:
    go = build.go_version()
    missing = [b.name for b in build.builds() if not (BUILD / b.key(go) / ".complete").exists()]
    if missing:
        _step(
            f"building the lab's binaries from Go modules ({', '.join(missing)}): {COLD_BUILD} the first time, "
            "cached after; each step prints when it starts and ends"
        )
    else:
        _step("the lab's binaries are in the build cache")


def _hosts_identity(hosts: list[LabHost]) -> str:
    return hashlib.sha256("\n".join(f"{h.name} {h.host_key}" for h in hosts).encode()).hexdigest()


def ensure_stack(cli: str, hosts: list[LabHost]) -> None:
    """The demo stack, describing these hosts. A state about hosts that are gone (the lab was
    taken down and made again, or the test suite ran) is dropped, and what earlier runs left on
    the hosts and in the cluster is cleared, so the first `up` starts clean."""
    BACKEND.mkdir(parents=True, exist_ok=True)
    identity = _hosts_identity(hosts)
    exists = _pulumi(cli, "stack", "select", STACK, capture=True).returncode == 0
    if exists and IDENTITY.exists() and IDENTITY.read_text() == identity:
        return
    if exists:
        _step("the demo state describes hosts that are gone: starting a new one")
        _pulumi(cli, "stack", "rm", STACK, "--force", "--yes", "--preserve-config", capture=True)
    install.clean_slate(load_config(stack.raw_from_stack_file()), hosts)
    created = _pulumi(cli, "stack", "init", STACK, capture=True)
    if created.returncode != 0:
        raise DemoError(f"pulumi stack init {STACK}: {created.stderr.strip() or created.stdout.strip()}")
    IDENTITY.write_text(identity)


def _echo_pod(node: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"echo-{node}", "namespace": NAMESPACE, "labels": {"app": "echo"}},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node},
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": "echo",
                    "image": pins.WORKLOAD_IMAGE,
                    "imagePullPolicy": "Never",
                    "env": [  # what its log line says it is
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                    ],
                }
            ],
        },
    }


def show_pods(names: list[str]) -> None:
    """An echo server on each node, then `kubectl logs` of each: the API server reaches every kubelet."""
    cluster.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}])
    cluster.apply(_echo_pod(n) for n in names)
    deadline = time.monotonic() + 120
    while True:
        phases = {
            p["metadata"]["name"]: p["status"].get("phase") for p in cluster.get("pods", "-n", NAMESPACE)["items"]
        }
        if all(phases.get(f"echo-{n}") == "Running" for n in names) or time.monotonic() > deadline:
            break
        time.sleep(1)
    for node in names:
        logs = cluster.kubectl("logs", "-n", NAMESPACE, f"echo-{node}", "--tail=3", check=False)
        print(f"$ kubectl logs -n {NAMESPACE} echo-{node}")
        print((logs.stdout or logs.stderr).rstrip(), flush=True)


def next_steps(cli: str) -> str:
    env = environment(cli)
    kubectl = build.binary("kubectl")
    exports = " \\\n         ".join(f"{k}={shlex.quote(v)}" for k, v in env.items() if k != "PATH")
    return f"""
demo: 3 nodes joined by `pulumi up`. Try, as root in {stack.PROJECT_DIR}:

  export {exports} \\
         PATH={shlex.quote(str(Path(cli).parent))}:$PATH
  alias kubectl={kubectl}

  # change a kubelet setting, preview it, roll it out (one node at a time, drained first)
  pulumi config set --stack {STACK} --path 'k8s-workers:defaults.maxPods' 120
  pulumi preview --stack {STACK} --diff
  pulumi up --stack {STACK}
  kubectl get nodes -o custom-columns=NAME:.metadata.name,PODS:.status.capacity.pods

  # remove a node: drained, its Node deleted, what the program installed removed from the host
  pulumi config rm --stack {STACK} --path 'k8s-workers:nodes[2]'
  pulumi up --stack {STACK}

  # everything down: nodes, hosts, control plane, the demo's state
  make demo-down

`make demo` again puts the lab stack back as `lab up` writes it (Pulumi.lab.yaml) and re-runs `up`.
"""


def up() -> int:
    cli = prerequisites()
    started = time.monotonic()
    announce_build()
    _step(f"bringing up the lab: a control plane and {NODES} Debian hosts with systemd (python -m lab up)")
    from lab.__main__ import up as lab_up  # the lab's entry point, which this extends

    state = lab_up(NODES)
    hosts = [h for h in state.hosts if h.init == "systemd"]
    ensure_stack(cli, hosts)
    _step(f"pulumi up --stack {STACK}: the program makes each host a worker node")
    result = _pulumi(cli, "up", "--stack", STACK, "--yes", "--skip-preview", "--policy-pack", "policy")
    if result.returncode != 0:
        raise DemoError(f"`pulumi up` failed (exit {result.returncode}): its output above says why")
    _step("importing the pause and echo images on each node (the lab has no registry)")
    made = images.build()
    for host in hosts:
        images.load(host, made)
    _step("the nodes, and a pod's logs from each")
    names = [h.name for h in hosts]
    cluster.wait_ready(names)
    print("$ kubectl get nodes -o wide")
    print(cluster.kubectl("get", "nodes", "-o", "wide").stdout.rstrip(), flush=True)
    show_pods(names)
    print(next_steps(cli))
    print(f"demo: ready in {time.monotonic() - started:.0f} s", flush=True)
    return 0


def down() -> int:
    """The nodes removed by `pulumi destroy` (while the lab runs), then the lab, then the state."""
    cli = pulumi_cli()
    known = cli is not None and BACKEND.exists() and stack.STACK_FILE.exists()
    if known and _pulumi(cli, "stack", "select", STACK, capture=True).returncode == 0:  # type: ignore[arg-type]
        _step(f"pulumi destroy --stack {STACK}")
        _pulumi(cli, "destroy", "--stack", STACK, "--yes", "--skip-preview")  # type: ignore[arg-type]
    from lab.__main__ import down as lab_down

    lab_down()
    shutil.rmtree(BACKEND.parent, ignore_errors=True)
    return 0


def main(argv: list[str]) -> int:
    try:
        return down() if argv[:1] == ["down"] else up()
    except DemoError as problem:
        print(f"\n{problem}", file=sys.stderr)
        return 2
