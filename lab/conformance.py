"""Kubernetes' conformance suite on nodes this program installed: `python -m lab conformance`.

The lab (3 systemd hosts) installed by `pulumi up` through the real engine, the suite's images
(lab.conformance_images) imported into each node's containerd, then `e2e.test` of
k8s.io/kubernetes (lab.pins.KUBERNETES) run by the ginkgo CLI with `--ginkgo.focus='\\[Conformance\\]'`
minus SKIPS, a JUnit report, progress on the terminal and a summary table per SIG at the end.
`--smoke` is the CI subset: the [sig-node] and [sig-network] tests that fit in about 10 minutes.
"""

from __future__ import annotations

import argparse
import itertools
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lab import build, cluster, cluster_dns, images, network, pins, stack
from lab.hosts import LabHost
from lab.paths import ADMIN_KUBECONFIG, CACHE

REPORTS = CACHE / "conformance"  # one folder per run: JUnit XML, the full log
CONFORMANCE_FOCUS = r"\[Conformance\]"
NO_REGISTRY = "no registry is reachable from the lab and this image is not built here"

# What is skipped, each with why: a spec is skipped when its full name starts with the key. This is
# the list the README shows and the CI smoke test checks against.
ENV_NAMES = (
    "Debian bookworm's busybox 1.35, the stand-in for busybox 1.37.0-2, has a `sh` that does not pass "
    "environment variables whose names are not shell identifiers (`data-1`) on to `env` "
    "(`env -i data-1=x busybox sh -c env` prints nothing of it); the test runs `sh -c env`"
)
PREVIOUS_AGNHOST = (
    "agnhost:2.55 (the suite's previous agnhost, for image changes); " + NO_REGISTRY + " (no released "
    "k8s.io/kubernetes module is known here to hold agnhost 2.55's source)"
)
HOST_PORT = (
    "a pod with a hostPort makes the portmap CNI plugin write net.ipv4.conf.cni0.route_localnet, and "
    "systemd-nspawn mounts /proc/sys read-only in the lab's hosts (a real host's is writable): the sandbox "
    "is never made"
)
SKIPS: dict[str, str] = {
    "[sig-api-machinery] Aggregator Should be able to support the 1.17 Sample API Server ": (
        "needs sample-apiserver:1.29.2 and etcd:3.7.0-0 images: " + NO_REGISTRY
    ),
    "[sig-cli] Kubectl client Update Demo ": "needs the nautilus:1.8 and kitten:1.8 images: " + NO_REGISTRY,
    "[sig-node] ImageVolume should succeed with pod and pull policy of Always ": (
        "pulls kitten:1.8 with pull policy Always: needs a registry"
    ),
    "[sig-apps] ReplicationController should test the lifecycle of a ReplicationController ": (
        "runs nginx:1.27.0-2: " + NO_REGISTRY
    ),
    "[sig-apps] Deployment should run the lifecycle of a Deployment ": PREVIOUS_AGNHOST,
    "[sig-apps] Deployment RecreateDeployment should delete old pods and create new ones ": PREVIOUS_AGNHOST,
    "[sig-apps] StatefulSet ": "every StatefulSet the suite makes (its e2e fixture) runs " + PREVIOUS_AGNHOST,
    "[sig-apps] Daemon set should update pod when spec was updated and update strategy is RollingUpdate ": (
        "updates the pods to " + PREVIOUS_AGNHOST
    ),
    "[sig-node] Pods should run through the lifecycle of Pods and PodStatus ": PREVIOUS_AGNHOST,
    "[sig-network] HostPort validates that there is no conflict between pods with same hostPort but different hostIP ": (
        HOST_PORT
    ),
    "[sig-scheduling] SchedulerPredicates validates that there exists conflict between pods with same hostPort and "
    "protocol but one using 0.0.0.0 hostIP ": HOST_PORT,
    "[sig-auth] Projected PodCertificate [FeatureGate:PodCertificateRequest] [FeatureGate:ClusterTrustBundle] "
    "[FeatureGate:ClusterTrustBundleProjection] should allow server and client pods to establish an mTLS connection ": (
        "its server and client run agnhost with imagePullPolicy Always: needs a registry"
    ),
    "[sig-node] ConfigMap should be consumable via the environment ": ENV_NAMES,
    "[sig-node] ConfigMap should be consumable as environment variable names with various prefixes ": ENV_NAMES,
    "[sig-node] Secrets should be consumable via the environment ": ENV_NAMES,
    "[sig-node] Secrets should be consumable as environment variable names variable names with various prefixes ": (
        ENV_NAMES
    ),
}


@dataclass
class SigCounts:
    passed: int = 0
    failed: int = 0
    skipped: int = 0  # in scope (matched the focus) but skipped: by SKIPS, or by the suite itself


@dataclass
class Summary:
    sigs: dict[str, SigCounts] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def total(self) -> SigCounts:
        counts = SigCounts()
        for sig in self.sigs.values():
            counts.passed += sig.passed
            counts.failed += sig.failed
            counts.skipped += sig.skipped
        return counts

    def table(self) -> str:
        """A markdown table: one row per SIG and a total."""
        lines = ["| SIG | passed | failed | skipped |", "|---|---:|---:|---:|"]
        for name, sig in sorted(self.sigs.items()):
            lines.append(f"| {name} | {sig.passed} | {sig.failed} | {sig.skipped} |")
        total = self.total()
        lines.append(f"| **total** | **{total.passed}** | **{total.failed}** | **{total.skipped}** |")
        return "\n".join(lines)


def sig_of(name: str) -> str:
    found = re.search(r"\[(sig-[\w-]+)\]", name)
    return found.group(1) if found else "other"


def summarize(junit_xml: str, focus: str = CONFORMANCE_FOCUS) -> Summary:
    """Counts per SIG from e2e.test's JUnit report. The report lists every spec of the suite:
    only those matching `focus` count (the others were never in scope); setup nodes
    ([SynchronizedBeforeSuite], [ReportAfterSuite]...) count only when they failed."""
    summary = Summary()
    pattern = re.compile(focus)
    for case in ElementTree.fromstring(junit_xml).iter("testcase"):
        name = case.get("name", "")
        failed = case.find("failure") is not None or case.find("error") is not None
        skipped = case.find("skipped") is not None
        if not pattern.search(name) and not (failed and not name.startswith("[It]")):
            continue
        name = name.removeprefix("[It] ")
        counts = summary.sigs.setdefault(sig_of(name), SigCounts())
        if failed:
            counts.failed += 1
            summary.failed.append(name)
        elif skipped:
            counts.skipped += 1
            summary.skipped.append(name)
        else:
            counts.passed += 1
    return summary


def skip_regex(prefixes: Iterable[str]) -> str:
    """One ginkgo --skip regex from spec-name prefixes. Not anchored: what ginkgo matches is not the
    name alone (`^[sig-node]` matches nothing), and each prefix names its SIG, which is enough."""
    return "|".join(re.escape(p) for p in prefixes)


def documented_skips(names: Iterable[str]) -> list[str]:
    """The names among `names` that SKIPS covers."""
    return sorted(n for n in names if any(n.startswith(p) for p in SKIPS))


# The CI subset: [sig-node] and [sig-network], quick ones only ([Slow] and [Serial] are full-run only,
# and so are the probe tests that wait out minutes by design).
SMOKE_FOCUS = r"\[sig-(node|network)\] .*\[Conformance\]"
SMOKE_EXCLUDE = r"\[Slow\]|\[Serial\]|\[Disruptive\]|Probing container .*(should \*not\* be restarted|with readiness probe that fails should never be ready)"


@dataclass(frozen=True)
class Run:
    focus: str
    skip: str
    procs: int
    report_dir: Path

    def command(self) -> list[str]:
        """The ginkgo CLI running e2e.test's specs on `procs` processes ([Serial] ones alone, at the end)."""
        return [
            str(build.binary("ginkgo")),
            f"--procs={self.procs}",
            f"--focus={self.focus}",
            f"--skip={self.skip}",
            "--timeout=6h",  # ginkgo's default is 1 h: a full run takes longer
            "-v",  # each spec's block (name, outcome, timeline) into the log; the terminal gets one line each
            "--no-color",
            "--silence-skips",
            "--poll-progress-after=300s",  # a spec taking that long says where it waits
            str(build.binary("e2e.test")),
            "--",
            f"--kubeconfig={ADMIN_KUBECONFIG}",
            "--provider=skeleton",  # no cloud: `local` would try SSH to the nodes
            f"--kubectl-path={build.binary('kubectl')}",
            f"--report-dir={self.report_dir}",
        ]


OUTCOME = re.compile(r"^• (?:\[(FAILED|PANICKED|TIMEDOUT|INTERRUPTED)\] )?\[[\d.]+ seconds\]")


# where a failed spec failed, which ginkgo writes into its name: `[sig-node] Secrets [It] should ...`
FAILED_NODE = re.compile(r" \[(It|BeforeEach|AfterEach|JustBeforeEach|JustAfterEach|DeferCleanup[^\]]*)\](?= )")


def progress_lines(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
    """(outcome, spec name) of each finished spec in ginkgo's verbose output, where each spec is a
    block between separator lines holding its name (`[sig-...] ...`) and its outcome (`• [N seconds]`,
    `• [FAILED] [N seconds]`), in either order (parallel processes report whole blocks)."""
    name, outcome = "", ""
    for line in itertools.chain(lines, ["-" * 30]):  # lazily: the progress shows as specs finish
        if line.startswith("-" * 30):
            if outcome:
                yield outcome, name
            name, outcome = "", ""
        elif (found := OUTCOME.match(line)) is not None:
            outcome = (found.group(1) or "passed").lower()
        elif line.startswith("[sig-") and not name:
            name = re.sub(r" \[sig-[^\]]*\]$", "", line.strip())  # the labels ginkgo repeats at the end
            name = FAILED_NODE.sub("", name)


def _progress(lines: Iterable[str], log: Path, started: float) -> None:
    """Every line to the log; on the terminal, each finished spec with the running counts."""
    done = Counter[str]()

    def logged() -> Iterator[str]:
        with log.open("w") as out:
            for line in lines:
                out.write(line)
                out.flush()
                if line.startswith(("Ran ", "FAIL!", "SUCCESS!", "Will run ", "Ginkgo ran")):
                    print(f"conformance: {line.rstrip()}", flush=True)
                yield line

    for outcome, name in progress_lines(logged()):
        done[outcome] += 1
        minutes = (time.monotonic() - started) / 60
        counts = ", ".join(f"{n} {o}" for o, n in sorted(done.items()))
        print(f"conformance [{minutes:5.1f} min; {counts}] {outcome.upper():7} {name}", flush=True)


def install_images(hosts: Iterable[LabHost]) -> None:
    """The suite's images and the lab's own, imported into each node's containerd."""
    from lab import conformance_images

    wanted = images.build() + conformance_images.build_images()
    for host in hosts:
        images.load(host, wanted)


def route_pod_networks(hosts: Iterable[LabHost]) -> None:
    """This machine (where the lab's API server runs) reaches each node's pod network through that
    node, and the service network through the first node's kube-proxy, as a control-plane node in
    the cluster's network would: the API server's proxy, webhooks and conversion webhooks dial pod and
    service IPs. Without these, service IPs would follow this machine's default route out of the lab.
    Lab only: the routes are on the lab's bridge and go with it."""
    hosts = list(hosts)
    nodes = {n["name"]: n["podCidr"] for n in stack.raw_from_stack_file().get("nodes", [])}
    routes = [(nodes[h.name], h.address) for h in hosts if h.name in nodes]
    routes.append((network.SERVICE_CIDR, hosts[0].address))
    for destination, via in routes:
        subprocess.run(["ip", "route", "replace", destination, "via", via, "dev", network.BRIDGE], check=True)


def provisioned_nodes() -> list[str]:
    """Names of Ready nodes at the pinned version (what `pulumi up` of the lab stack leaves)."""
    ready = []
    for name, node in cluster.nodes().items():
        version = node["status"]["nodeInfo"]["kubeletVersion"]
        if cluster.conditions(node).get("Ready") == "True" and version == pins.KUBERNETES:
            ready.append(name)
    return sorted(ready)


def run(focus: str, skip: str, procs: int) -> tuple[int, Summary | None, Path]:
    report_dir = REPORTS / time.strftime("%Y%m%d-%H%M%S")
    report_dir.mkdir(parents=True)
    command = Run(focus, skip, procs, report_dir).command()
    (report_dir / "command").write_text(" ".join(command) + "\n")
    print(f"conformance: {' '.join(command[:8])} ...; log {report_dir / 'e2e.log'}", flush=True)
    started = time.monotonic()
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=report_dir) as p:
        assert p.stdout is not None
        _progress(iter(p.stdout.readline, ""), report_dir / "e2e.log", started)
        code = p.wait()
    junit = report_dir / "junit_01.xml"
    summary = summarize(junit.read_text(), focus) if junit.exists() else None
    print(f"conformance: exit {code} after {(time.monotonic() - started) / 60:.1f} min; report {report_dir}")
    return code, summary, report_dir


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab conformance")
    parser.add_argument("--smoke", action="store_true", help="the CI subset: quick [sig-node] and [sig-network]")
    parser.add_argument("--focus", help=f"a ginkgo focus regex instead of {CONFORMANCE_FOCUS!r}")
    parser.add_argument("--procs", type=int, default=4, help="parallel ginkgo processes (default 4)")
    parser.add_argument("--no-provision", action="store_true", help="use the nodes as they are (already installed)")
    args = parser.parse_args(argv)
    build.build_all(plan=build.conformance_builds())
    if not args.no_provision:
        from lab import demo  # the lab up with 3 nodes and `pulumi up` of the lab stack (the real engine)

        if demo.up() != 0:
            return 1
    from lab.state import load

    hosts = [h for h in load().hosts if h.init == "systemd"]
    ready = provisioned_nodes() if hosts else []
    if len(ready) < 3 or sorted(h.name for h in hosts) != ready:
        print(f"conformance: needs the lab's 3 nodes Ready at {pins.KUBERNETES}, found {ready}", file=sys.stderr)
        return 2
    install_images(hosts)
    route_pod_networks(hosts)
    cluster_dns.ensure()  # what a real cluster runs: Services and DNS tests reach names through it
    focus = args.focus or (SMOKE_FOCUS if args.smoke else CONFORMANCE_FOCUS)
    skip = skip_regex(SKIPS) + (f"|{SMOKE_EXCLUDE}" if args.smoke else "")
    code, summary, report_dir = run(focus, skip, args.procs)
    if summary is None:
        print("conformance: no JUnit report was written", file=sys.stderr)
        return code or 1
    print(summary.table())
    for name in summary.failed:
        print(f"FAILED  {name}")
    (report_dir / "summary.md").write_text(summary.table() + "\n")
    return code
