"""The lab's binary build and control plane start: what a person sees when something is missing or
broken (each failure names its step and what to do; a half-built cache is never used)."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

from lab import build, control_plane
from lab.build import BuildError, GoBuild

pytestmark = pytest.mark.skipif(shutil.which("go") is None, reason="LAB BUILD TESTS SKIPPED: no Go toolchain")

# A small module the proxy serves (and the machine's module cache usually holds).
SMALL = GoBuild(name="uuid-test", module="github.com/google/uuid", version="v1.6.0", binaries={})


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setattr(build, "BUILD", tmp_path / "build")
    return tmp_path / "build"


def test_kubernetes_wrapper_points_staging_modules_at_their_published_versions():
    upstream = """module k8s.io/kubernetes

go 1.26.0

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
)
"""
    gomod = build.wrapper_gomod(build.kubernetes("v1.37.2", ("kubelet",)), upstream)
    assert "require k8s.io/kubernetes v1.37.2" in gomod
    assert "\tk8s.io/api => k8s.io/api v0.37.2" in gomod
    assert "\tk8s.io/client-go => k8s.io/client-go v0.37.2" in gomod
    assert "./staging" not in gomod


def test_containerd_wrapper_carries_its_excludes():
    upstream = "module github.com/containerd/containerd/v2\n\nexclude (\n\t// why\n\tgithub.com/a/b v1.0.1\n)\n"
    gomod = build.wrapper_gomod(GoBuild("c", "github.com/containerd/containerd/v2", "v2.1.5", {}), upstream)
    assert "exclude (\n\tgithub.com/a/b v1.0.1\n)" in gomod


def test_kubernetes_binaries_get_their_version_stamped():
    flags = " ".join(build.kubernetes_ldflags("v1.37.2"))
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert f"-X {package}.gitVersion=v1.37.2" in flags
        assert f"-X {package}.gitMinor=37" in flags


def test_a_missing_go_toolchain_is_named(cache, monkeypatch, tmp_path):
    build.go_version.cache_clear()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    try:
        with pytest.raises(BuildError, match=r"`go` is not on PATH; install Go 1\.26"):
            build.build_all()
    finally:
        build.go_version.cache_clear()


def test_an_unreachable_module_proxy_is_named(cache, monkeypatch, tmp_path):
    monkeypatch.setenv("GOPROXY", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("GOMODCACHE", str(tmp_path / "modcache"))  # nothing cached either
    monkeypatch.setenv("GOFLAGS", "-modcacherw")
    with pytest.raises(BuildError) as error:
        build.build_one(SMALL, build.go_version())
    message = str(error.value)
    assert message.startswith("uuid-test: fetching github.com/google/uuid@v1.6.0 failed")
    assert "the Go module proxy could not be reached or refused the module: GOPROXY=http://127.0.0.1:9" in message
    assert not list(cache.glob("*/.complete"))


def test_a_failed_build_step_is_named_and_never_cached(cache):
    broken = GoBuild(
        name="uuid-test", module="github.com/google/uuid", version="v1.6.0",
        binaries={"nothing": "github.com/google/uuid/no-such-package"},
    )  # fmt: skip
    with pytest.raises(BuildError, match=r"^uuid-test v1\.6\.0: go build failed"):
        build.build_one(broken, build.go_version())
    assert not list(cache.glob("*/.complete"))
    assert not (cache / broken.key(build.go_version())).exists()


def test_a_half_built_cache_is_never_used(cache):
    """A build killed midway leaves a `.partial` folder (and, at worst, a folder without the
    `.complete` marker): neither counts as built."""
    go = build.go_version()
    tool = GoBuild(name="uuid-test", module="github.com/google/uuid", version="v1.6.0", binaries={})
    target = cache / tool.key(go)
    (target / "bin").mkdir(parents=True)  # no .complete: half-built
    (cache / f"{target.name}.partial" / "bin").mkdir(parents=True)
    (cache / f"{target.name}.partial" / "bin" / "stale").write_text("from a killed run")
    built = build.build_one(tool, go)
    assert (built / ".complete").exists()
    assert not (cache / f"{target.name}.partial").exists()
    assert not (built / "bin" / "stale").exists()


def test_a_port_in_use_is_named_before_anything_starts():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(control_plane.ControlPlaneError, match=rf"etcd: 127\.0\.0\.1:{port} is already in use"):
            control_plane.ensure_ports_free("etcd", {"etcd": ("127.0.0.1", port)})
    control_plane.ensure_ports_free("etcd", {"etcd": ("127.0.0.1", port)})  # free again: no error


def test_pins_have_one_place():
    """The lab's versions come from lab/pins.py only."""
    sources = [p for p in Path(build.__file__).parent.glob("*.py") if p.name != "pins.py"]
    for source in sources:
        text = source.read_text()
        for version in ("v1.37.2", "v3.7.0", "v2.1.5", "v1.3.4", "v1.7.1"):
            assert version not in text, (source.name, version)
    assert os.path.exists(Path(build.__file__).parent / "pins.py")


def test_fields_added_later_leave_earlier_cache_keys_alone():
    """`data` and `test` count only when set: every build made before they existed keeps its cache."""
    import hashlib
    import json
    from dataclasses import asdict

    before = {k: v for k, v in asdict(SMALL).items() if k not in ("data", "test")}
    spec = json.dumps({**before, "go": "go1.26.0", "recipe": build.RECIPE_VERSION}, sort_keys=True)
    assert SMALL.key("go1.26.0") == f"uuid-test-v1.6.0-{hashlib.sha256(spec.encode()).hexdigest()[:12]}"
    assert GoBuild(**{**asdict(SMALL), "test": True}).key("go1.26.0") != SMALL.key("go1.26.0")


def test_the_conformance_suite_is_built_only_on_request():
    every_lab_build = {b.name for b in build.builds()}
    assert {"e2e-test", "agnhost", "ginkgo", "coredns"}.isdisjoint(every_lab_build)
    suite = next(b for b in build.conformance_builds() if b.name == "e2e-test")
    assert suite.test and suite.binaries == {"e2e.test": "k8s.io/kubernetes/test/e2e"}
