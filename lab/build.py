"""Real binaries for the lab, built from Go modules: `python -m lab build`.

Kubernetes, etcd, containerd, runc and the CNI plugins cannot be downloaded here (only the Go module
proxy is reachable), so each is built from its module at the version `lab.pins` names. Each build
runs in a small wrapper module: `go install mod@version` refuses modules whose go.mod has
replace/exclude directives, and k8s.io/kubernetes replaces its 30-odd staging modules with local
paths, which the wrapper points at their published `v0.<minor>.<patch>` versions instead.

Results go to a cache outside the repo, one directory per build keyed by a hash of everything that
shapes the binaries (module, version, packages, flags, Go version). A build writes into a `.partial`
directory renamed into place only when every binary exists, so a killed build is never used.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from lab import pins
from lab.paths import BUILD

RECIPE_VERSION = 1  # bump when the way binaries are built changes
_ADDED_LATER = ("data", "test")  # GoBuild fields that enter the cache key only when not at their default


class BuildError(RuntimeError):
    """A step failed: the message names the step and what to do."""


@dataclass(frozen=True)
class GoBuild:
    name: str  # what the cache directory and progress lines call it
    module: str
    version: str
    binaries: dict[str, str]  # output file -> Go package
    cgo: bool = False
    tags: tuple[str, ...] = ()
    ldflags: tuple[str, ...] = ()
    extra_env: dict[str, str] = field(default_factory=dict)
    data: tuple[str, ...] = ()  # folders of the module copied beside bin/ (kube-bench's benchmarks)
    test: bool = False  # `go test -c`: the packages' test binaries (e2e.test) instead of their commands

    def key(self, go_version: str) -> str:
        # A field added later counts only when set, so adding one keeps every earlier build's cache.
        shaping = {k: v for k, v in asdict(self).items() if k not in _ADDED_LATER or v}
        spec = json.dumps({**shaping, "go": go_version, "recipe": RECIPE_VERSION}, sort_keys=True)
        return f"{self.name}-{self.version}-{hashlib.sha256(spec.encode()).hexdigest()[:12]}"


def kubernetes_ldflags(version: str) -> tuple[str, ...]:
    """Without these the binaries report v0.0.0 and the kubelet registers a Node of version v0.0.0."""
    major, minor = version.lstrip("v").split(".")[:2]
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {package}.gitVersion={version}",
            f"-X {package}.gitMajor={major}",
            f"-X {package}.gitMinor={minor}",
            f"-X {package}.gitTreeState=clean",
            f"-X {package}.buildDate=1970-01-01T00:00:00Z",
        ]
    return tuple(flags)


def kubernetes(version: str, binaries: tuple[str, ...]) -> GoBuild:
    return GoBuild(
        name="kubernetes",
        module="k8s.io/kubernetes",
        version=version,
        binaries={b: f"k8s.io/kubernetes/cmd/{b}" for b in binaries},
        ldflags=kubernetes_ldflags(version),
    )


NODE_BINARIES = ("kubelet", "kube-proxy")
CONTROL_PLANE_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")


def builds(kubernetes_versions: tuple[str, ...] = (pins.KUBERNETES,)) -> list[GoBuild]:
    """Everything the lab runs: the control plane at the pinned version, node binaries per version."""
    plan = [kubernetes(pins.KUBERNETES, CONTROL_PLANE_BINARIES + NODE_BINARIES)]
    plan.append(replace(kubernetes(pins.KUBERNETES, ("kubectl",)), name="kubectl"))  # what the tests ask with
    plan += [kubernetes(v, NODE_BINARIES) for v in kubernetes_versions if v != pins.KUBERNETES]
    plan += [
        GoBuild(
            name="etcd",
            module="go.etcd.io/etcd/server/v3",
            version=pins.ETCD,
            binaries={"etcd": "go.etcd.io/etcd/server/v3"},
            ldflags=("-s", "-w"),
        ),
        GoBuild(
            name="containerd",
            module="github.com/containerd/containerd/v2",
            version=pins.CONTAINERD,
            binaries={
                b: f"github.com/containerd/containerd/v2/cmd/{b}"
                for b in ("containerd", "containerd-shim-runc-v2", "ctr")
            },
            tags=("no_btrfs", "no_devmapper", "no_zfs", "osusergo", "netgo"),
            ldflags=(
                "-s",
                "-w",
                f"-X github.com/containerd/containerd/v2/version.Version={pins.CONTAINERD.lstrip('v')}",
            ),
        ),
        GoBuild(
            name="runc",
            module="github.com/opencontainers/runc",
            version=pins.RUNC,
            binaries={"runc": "github.com/opencontainers/runc"},
            cgo=True,  # seccomp filters need libseccomp, linked statically
            tags=("seccomp", "urfave_cli_no_docs", "netgo", "osusergo"),
            ldflags=("-s", "-w", f"-X main.version={pins.RUNC.lstrip('v')}", "-extldflags -static"),
        ),
        GoBuild(
            name="cni-plugins",
            module="github.com/containernetworking/plugins",
            version=pins.CNI_PLUGINS,
            binaries={
                "bridge": "github.com/containernetworking/plugins/plugins/main/bridge",
                "loopback": "github.com/containernetworking/plugins/plugins/main/loopback",
                "host-local": "github.com/containernetworking/plugins/plugins/ipam/host-local",
                "portmap": "github.com/containernetworking/plugins/plugins/meta/portmap",
            },
            ldflags=("-s", "-w"),
        ),
        GoBuild(
            name="kube-bench",
            module="github.com/aquasecurity/kube-bench",
            version=pins.KUBE_BENCH,
            binaries={"kube-bench": "github.com/aquasecurity/kube-bench"},
            ldflags=("-s", "-w", f"-X github.com/aquasecurity/kube-bench/cmd.KubeBenchVersion={pins.KUBE_BENCH}"),
            data=("cfg",),
        ),
    ]
    return plan


def conformance_builds() -> list[GoBuild]:
    """Kubernetes' conformance suite and the image most of its tests run: built only on request
    (`lab build --conformance`, `lab conformance`), not by every `lab build`: e2e.test alone is 216 MB."""
    return [
        GoBuild(
            name="e2e-test",
            module="k8s.io/kubernetes",
            version=pins.KUBERNETES,
            binaries={"e2e.test": "k8s.io/kubernetes/test/e2e"},
            ldflags=kubernetes_ldflags(pins.KUBERNETES),  # the suite logs and compares its own version
            test=True,
        ),
        GoBuild(
            name="agnhost",
            module="k8s.io/kubernetes",
            version=pins.KUBERNETES,
            binaries={"agnhost": "k8s.io/kubernetes/test/images/agnhost"},
            ldflags=("-s", "-w"),  # CGO off (the default): static, runs in an image with no libc
        ),
        GoBuild(
            name="nonewprivs",  # `nnp`, setuid in its image: the AllowPrivilegeEscalation tests
            module="k8s.io/kubernetes",
            version=pins.KUBERNETES,
            binaries={"nnp": "k8s.io/kubernetes/test/images/nonewprivs"},
            ldflags=("-s", "-w"),
        ),
        GoBuild(
            name="ginkgo",  # the CLI: runs e2e.test's specs on several processes, [Serial] ones alone at the end
            module="github.com/onsi/ginkgo/v2",
            version=pins.GINKGO,
            binaries={"ginkgo": "github.com/onsi/ginkgo/v2/ginkgo"},
            ldflags=("-s", "-w"),
        ),
        GoBuild(
            name="coredns",  # the cluster DNS add-on a real cluster runs (kubeadm's): Services are reached by name
            module="github.com/coredns/coredns",
            version=pins.COREDNS,
            binaries={"coredns": "github.com/coredns/coredns"},
            ldflags=("-s", "-w"),
        ),
    ]


def _go(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, step: str) -> str:
    try:
        result = subprocess.run(
            ["go", *args], cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise BuildError(
            f"{step}: `go` is not on PATH; install Go {'.'.join(map(str, pins.GO_MINIMUM))} or newer"
        ) from None
    if result.returncode != 0:
        # `go mod download -json` reports its errors on stdout, in the JSON's "Error" field
        tail = "\n".join((result.stderr.strip() or result.stdout.strip()).splitlines()[-15:])
        hint = ""
        if re.search(r"proxy\.golang\.org|dial tcp|no such host|i/o timeout|connection refused|403 Forbidden", tail):
            hint = f"\n(the Go module proxy could not be reached or refused the module: GOPROXY={_goproxy()})"
        raise BuildError(f"{step} failed:\n{tail}{hint}")
    return result.stdout


def _goproxy() -> str:
    return (
        os.environ.get("GOPROXY")
        or subprocess.run(["go", "env", "GOPROXY"], capture_output=True, text=True).stdout.strip()
    )


@functools.cache
def go_version() -> str:
    output = _go("env", "GOVERSION", step="checking the Go toolchain").strip()  # "go1.26.8"
    numbers = tuple(int(n) for n in re.findall(r"\d+", output)[:2])
    if numbers < pins.GO_MINIMUM:
        raise BuildError(
            f"Go {output} is too old: k8s.io/kubernetes {pins.KUBERNETES} needs go{'.'.join(map(str, pins.GO_MINIMUM))}"
        )
    return output


def _upstream(build: GoBuild, work: Path) -> dict[str, str]:
    """The module as the proxy serves it: `go mod download -json` (GoMod, Dir...)."""
    return json.loads(
        _go(
            "mod",
            "download",
            "-json",
            f"{build.module}@{build.version}",
            cwd=work,
            step=f"{build.name}: fetching {build.module}@{build.version}",
        )
    )


def wrapper_gomod(build: GoBuild, upstream: str) -> str:
    """go.mod of the wrapper: require the module, carry over its excludes, and turn each replace
    to a local path (staging modules, sibling modules of a monorepo) into the published version."""
    lines = ["module k8s-workers.invalid/lab-build", "", "go 1.26", "", f"require {build.module} {build.version}", ""]
    published = re.sub(r"^v1\.", "v0.", build.version) if build.module == "k8s.io/kubernetes" else build.version
    replaces = re.findall(r"^\s*(?:replace\s+)?(\S+)\s+=>\s+(\.\.?/\S*)\s*$", upstream, re.MULTILINE)
    if replaces:
        lines += ["replace ("] + [f"\t{module} => {module} {published}" for module, _ in replaces] + [")", ""]
    excludes = re.search(r"^exclude \((.*?)^\)", upstream, re.MULTILINE | re.DOTALL)
    if excludes:
        kept = [line for line in excludes.group(1).splitlines() if line.strip() and not line.strip().startswith("//")]
        lines += ["exclude (", *kept, ")", ""]
    return "\n".join(lines)


def _go_output_name(package: str) -> str:
    """What `go build -o DIR/` names a package's binary: its last element, skipping a major-version suffix."""
    parts = package.split("/")
    return parts[-2] if re.fullmatch(r"v\d+", parts[-1]) else parts[-1]


def build_one(build: GoBuild, go: str) -> Path:
    """The directory holding the build's binaries, built now if the cache lacks it."""
    target = BUILD / build.key(go)
    if (target / ".complete").exists():
        return target
    BUILD.mkdir(parents=True, exist_ok=True)
    work = BUILD / f"{target.name}.partial"
    shutil.rmtree(work, ignore_errors=True)  # whatever a killed run left
    (work / "bin").mkdir(parents=True)
    upstream = _upstream(build, work)
    (work / "go.mod").write_text(wrapper_gomod(build, Path(upstream["GoMod"]).read_text()))
    for folder in build.data:  # read-only in the module cache: copied, then made writable for the cache's rmtree
        shutil.copytree(Path(upstream["Dir"]) / folder, work / folder)
        for path in [work / folder, *(work / folder).rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)
    env = {"CGO_ENABLED": "1" if build.cgo else "0", "GOFLAGS": "-mod=mod -buildvcs=false -trimpath", **build.extra_env}
    args = ["test", "-c"] if build.test else ["build"]
    args += ["-o", str(work / "bin") + "/"]
    if build.tags:
        args += ["-tags", ",".join(build.tags)]
    if build.ldflags:
        args += ["-ldflags", " ".join(build.ldflags)]
    if build.binaries:  # one `go build` for several packages shares their compiled dependencies
        _go(*args, *build.binaries.values(), cwd=work, env=env, step=f"{build.name} {build.version}: go build")
    for output, package in build.binaries.items():
        built = work / "bin" / (_go_output_name(package) + (".test" if build.test else ""))
        if built.name != output:
            built.rename(work / "bin" / output)
        if not (work / "bin" / output).is_file():
            raise BuildError(f"{build.name}: go build made no {output} (from {package})")
    (work / ".complete").write_text(json.dumps(asdict(build), sort_keys=True) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    work.rename(target)
    return target


def build_all(
    kubernetes_versions: tuple[str, ...] = (pins.KUBERNETES,), plan: list[GoBuild] | None = None
) -> dict[str, Path]:
    """Build (or find in the cache) every lab binary, or those of `plan`; name -> directory of binaries."""
    go = go_version()
    plan = builds(kubernetes_versions) if plan is None else plan
    found: dict[str, Path] = {}
    started = time.monotonic()
    for number, build in enumerate(plan, 1):
        step_started = time.monotonic()
        cached = (BUILD / build.key(go) / ".complete").exists()
        print(
            f"lab build [{number}/{len(plan)}] {build.name} {build.version}: {'cached' if cached else 'building'}",
            flush=True,
        )
        found[f"{build.name}-{build.version}"] = build_one(build, go)
        if not cached:
            print(
                f"lab build [{number}/{len(plan)}] {build.name} {build.version}: done in {time.monotonic() - step_started:.0f} s",
                flush=True,
            )
    print(f"lab build: {len(plan)} builds ready in {time.monotonic() - started:.0f} s ({BUILD})", flush=True)
    return found


def binary(name: str, version: str | None = None) -> Path:
    """Path of one built binary; `version` picks the Kubernetes version of a Kubernetes binary."""
    wanted = version or pins.KUBERNETES
    for candidate in [*builds((wanted,)), *conformance_builds()]:
        versioned = candidate.module == "k8s.io/kubernetes"
        if name in candidate.binaries and (not versioned or candidate.version == wanted):
            path = BUILD / candidate.key(go_version()) / "bin" / name
            if not path.exists():
                how = "python -m lab build" + (" --conformance" if candidate in conformance_builds() else "")
                raise BuildError(f"{name} {candidate.version} is not built yet: run `{how}`")
            return path
    raise KeyError(name)


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m lab build")
    parser.add_argument(
        "--kubernetes", action="append", default=[], help=f"extra node version(s), e.g. {pins.KUBERNETES_EXTRA[0]}"
    )
    parser.add_argument(
        "--conformance", action="store_true", help="also e2e.test and agnhost (the conformance suite, ~4 min, 216 MB)"
    )
    args = parser.parse_args(argv)
    try:
        build_all((pins.KUBERNETES, *args.kubernetes))
        if args.conformance:
            build_all(plan=conformance_builds())
    except BuildError as error:
        print(f"lab build: {error}", file=sys.stderr)
        return 1
    return 0
