"""The generated install and removal scripts, run for real by bash against a scratch root."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from k8s_workers.config.loader import load_config
from k8s_workers.render.host_paths import PATHS
from k8s_workers.render.node_files import PLACEHOLDER_SECRETS
from k8s_workers.scripts.commands import install_command, install_script, install_stdin, removal_command, removal_script
from k8s_workers.scripts.install_plan import NodePlan, plan_node
from lab.pki import client_certificate
from tests.conftest import base_config
from tests.scratch_host import ScratchHost, artifact_bytes, artifact_server

ARTIFACTS = ("kubelet", "kube-proxy", "containerd", "runc", "cni-plugins")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the scripts chown files to root: run as root")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with artifact_server(tmp_path_factory.mktemp("mirror")) as srv:
        yield srv


def _raw(test_ca, server, generation: int = 1) -> dict[str, Any]:
    raw = base_config(test_ca)
    for name in ARTIFACTS:
        spec = raw["cluster"]["binaries"]["artifacts"][name]
        sha = server.publish(f"{name}-{generation}", artifact_bytes(name, generation))
        spec["url"] = f"{server.base_url}/{name}-{generation}"
        spec["sha256"] = {"amd64": sha}
    return raw


def _plan(raw: dict[str, Any]) -> NodePlan:
    config = load_config(raw)
    return plan_node(config.cluster, config.nodes[0], PLACEHOLDER_SECRETS)


@pytest.fixture
def host(tmp_path) -> ScratchHost:
    return ScratchHost(tmp_path)


def _installed(host: ScratchHost, raw: dict[str, Any]) -> NodePlan:
    plan = _plan(raw)
    result = host.run(install_script(plan))
    assert result.returncode == 0, result.stderr
    return plan


def test_fresh_install_places_every_file_and_binary(host, test_ca, server):
    raw = _raw(test_ca, server)
    plan = _plan(raw)
    result = host.run(install_script(plan))
    assert result.returncode == 0, result.stderr
    for f in plan.files:
        target = host.root / f.path.lstrip("/")
        assert target.read_text() == f.content, f.path
        st = target.stat()
        assert oct(st.st_mode & 0o777) == oct(int(f.mode, 8)), f.path
        assert (st.st_uid, st.st_gid) == (0, 0)
    assert host.read("/usr/local/bin/kubelet") == artifact_bytes("kubelet")
    assert os.access(host.root / "usr/local/bin/kubelet", os.X_OK)
    assert (host.root / "usr/local/bin/containerd-shim-runc-v2").exists()
    assert (host.root / "opt/cni/bin/bridge").exists()
    summary = result.summary
    assert summary["node"] == "worker-1"
    assert set(summary["files_changed"]) >= {f.path for f in plan.files}
    assert set(summary["binaries_changed"]) == set(ARTIFACTS)
    assert summary["services_started"] == ["k8s-workers-pod-routes", "containerd", "kubelet", "kube-proxy"]
    assert summary["services_restarted"] == []
    assert "daemon-reload" in host.calls()
    assert os.readlink(host.root / "etc/systemd/system/swap.target") == "/dev/null"
    assert not list(host.root.rglob(".k8s-workers.*")), "temp files left behind"


def test_rerun_writes_nothing_and_restarts_nothing(host, test_ca, server):
    raw = _raw(test_ca, server)
    _installed(host, raw)
    before = host.snapshot()
    host.clear_calls()
    result = host.run(install_script(_plan(raw)))
    assert result.returncode == 0, result.stderr
    assert host.snapshot() == before  # same inodes, same mtimes, same modes
    summary = result.summary
    for key in (
        "files_changed",
        "modes_fixed",
        "binaries_changed",
        "services_restarted",
        "services_started",
        "services_enabled",
    ):
        assert summary[key] == [], key
    assert not [c for c in host.calls() if c.split()[0] in ("restart", "start", "enable", "daemon-reload")]


def test_kubelet_setting_change_rewrites_and_restarts_only_kubelet(host, test_ca, server):
    raw = _raw(test_ca, server)
    _installed(host, raw)
    raw["defaults"]["maxPods"] = 42
    result = host.run(install_script(_plan(raw)))
    assert result.returncode == 0, result.stderr
    assert result.summary["files_changed"] == [PATHS.kubelet_config]
    assert result.summary["services_restarted"] == ["kubelet"]
    assert b"maxPods: 42" in host.read(PATHS.kubelet_config)


def test_proxy_mode_change_restarts_only_kube_proxy(host, test_ca, server):
    raw = _raw(test_ca, server)
    _installed(host, raw)
    raw["cluster"]["kubeProxy"] = {"mode": "nftables"}
    result = host.run(install_script(_plan(raw)))
    assert result.returncode == 0, result.stderr
    assert result.summary["files_changed"] == [PATHS.kube_proxy_config]
    assert result.summary["services_restarted"] == ["kube-proxy"]


def test_new_binary_sha_replaces_only_that_binary(host, test_ca, server):
    raw = _raw(test_ca, server)
    _installed(host, raw)
    newer = _raw(test_ca, server, generation=2)
    raw["cluster"]["binaries"]["artifacts"]["kubelet"] = newer["cluster"]["binaries"]["artifacts"]["kubelet"]
    before = host.snapshot()
    result = host.run(install_script(_plan(raw)))
    assert result.returncode == 0, result.stderr
    assert result.summary["binaries_changed"] == ["kubelet"]
    assert result.summary["services_restarted"] == ["kubelet"]
    assert host.read("/usr/local/bin/kubelet") == artifact_bytes("kubelet", 2)
    changed = {p for p, v in host.snapshot().items() if before.get(p) != v}
    assert changed == {"/usr/local/bin/kubelet", "/var/lib/k8s-workers/expected"}  # and the drift check's record of it


def test_wrong_sha256_stops_and_keeps_the_old_binary(host, test_ca, server):
    raw = _raw(test_ca, server)
    _installed(host, raw)
    newer = _raw(test_ca, server, generation=3)
    spec = newer["cluster"]["binaries"]["artifacts"]["kubelet"]
    spec["sha256"] = {"amd64": hashlib.sha256(b"something else").hexdigest()}
    raw["cluster"]["binaries"]["artifacts"]["kubelet"] = spec
    result = host.run(install_script(_plan(raw)))
    assert result.returncode != 0
    assert "sha256 of kubelet" in result.stderr and "left as it was" in result.stderr
    assert host.read("/usr/local/bin/kubelet") == artifact_bytes("kubelet", 1)
    assert not list(host.root.rglob(".k8s-workers.*"))


def test_a_failed_restart_is_owed_to_the_next_run(host, test_ca, server):
    raw = _raw(test_ca, server)
    _installed(host, raw)
    raw["defaults"]["maxPods"] = 43
    failed = host.run(install_script(_plan(raw)), FAKE_FAIL="restart kubelet")
    assert failed.returncode != 0
    assert (host.root / "var/lib/k8s-workers/pending/kubelet").exists()
    result = host.run(install_script(_plan(raw)))
    assert result.returncode == 0, result.stderr
    assert result.summary["files_changed"] == []  # the file landed in the failed run
    assert result.summary["services_restarted"] == ["kubelet"]  # but its restart was still owed


def _path_without(tool: str, host: ScratchHost, tmp_path: Path) -> str:
    """A PATH holding every command of this machine except `tool`."""
    only = tmp_path / "path-without"
    only.mkdir()
    for folder in [host.bin, *map(Path, os.environ["PATH"].split(":"))]:
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            if entry.name != tool and not (only / entry.name).exists() and os.access(entry, os.X_OK):
                (only / entry.name).symlink_to(entry)
    return str(only)


def test_missing_tool_is_refused_before_any_change(host, test_ca, server, tmp_path):
    result = host.run(install_script(_plan(_raw(test_ca, server))), path=_path_without("flock", host, tmp_path))
    assert result.returncode != 0
    assert "missing tools: flock" in result.stderr
    assert list(host.root.iterdir()) == [], "the host was changed before the refusal"


def test_conntrack_is_not_needed(host, test_ca, server, tmp_path):
    """kube-proxy has used netlink instead of the conntrack tool since 1.32."""
    result = host.run(install_script(_plan(_raw(test_ca, server))), path=_path_without("conntrack", host, tmp_path))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("version", "allow", "outcome"),
    [
        ("1.37.2", False, "refused"),
        ("1.35.5", False, "refused"),
        ("1.34.4", False, "warned"),
        ("1.37.2", True, "warned"),
    ],
)
def test_cgroup_v1_hosts_are_refused_from_1_35_unless_allowed(host, test_ca, server, version, allow, outcome):
    raw = _raw(test_ca, server)
    raw["cluster"]["kubernetesVersion"] = version
    raw["defaults"]["allowCgroupV1"] = allow
    host.cgroup_v1()
    result = host.run(install_script(_plan(raw)))
    if outcome == "refused":
        assert result.returncode != 0
        assert "uses cgroup v1, which the kubelet refuses from Kubernetes 1.35 on" in result.stderr
        assert "allowCgroupV1: true" in result.stderr
        assert [p.name for p in host.root.iterdir()] == ["sys"], "the host was changed before the refusal"
    else:
        assert result.returncode == 0, result.stderr
        assert [w for w in result.summary["warnings"] if "cgroup v1" in w], result.summary
        kubelet_config = host.read(PATHS.kubelet_config).decode()
        assert ("failCgroupV1: false" in kubelet_config) == allow


def test_swap_lines_are_commented_and_restored_on_removal(host, test_ca, server):
    fstab = host.root / "etc/fstab"
    fstab.parent.mkdir(parents=True)
    original = "UUID=abc / ext4 defaults 0 1\n/swapfile none swap sw 0 0\n"
    fstab.write_text(original)
    raw = _raw(test_ca, server)
    plan = _installed(host, raw)
    assert fstab.read_text() == "UUID=abc / ext4 defaults 0 1\n#k8s-workers# /swapfile none swap sw 0 0\n"
    result = host.run(removal_script(plan))
    assert result.returncode == 0, result.stderr
    assert fstab.read_text() == original


def test_removal_leaves_nothing_of_ours(host, test_ca, server):
    raw = _raw(test_ca, server)
    plan = _installed(host, raw)
    # What the kubelet writes for itself after bootstrapping: removed too.
    (host.root / "var/lib/kubelet/pki").mkdir()
    (host.root / "var/lib/kubelet/pki/kubelet-client-current.pem").write_text("issued certificate\n")
    (host.root / "etc/kubernetes/kubelet.conf").write_text("kubeconfig\n")
    result = host.run(removal_script(plan))
    assert result.returncode == 0, result.stderr
    leftovers = [p for p in host.root.rglob("*") if not p.is_dir()]
    assert leftovers == []
    for path, _ in plan.dirs:
        if path != "/usr/local/bin":
            assert not (host.root / path.lstrip("/")).exists(), path
    calls = host.calls()
    for service in ("kubelet", "kube-proxy", "containerd"):
        assert f"disable --now --quiet {service}" in calls
    assert not (host.systemd / "running").exists() or list((host.systemd / "running").iterdir()) == []


def test_install_after_removal_converges_again(host, test_ca, server):
    raw = _raw(test_ca, server)
    plan = _installed(host, raw)
    assert host.run(removal_script(plan)).returncode == 0
    result = host.run(install_script(plan))
    assert result.returncode == 0, result.stderr
    assert set(result.summary["binaries_changed"]) == set(ARTIFACTS)


def test_scripts_never_echo_secrets(host, test_ca, server):
    raw = _raw(test_ca, server)
    config = load_config(raw)
    from k8s_workers.render.node_files import NodeSecrets

    cert_pem, key_pem = client_certificate(test_ca.cert_pem, test_ca.key_pem, "system:kube-proxy", 1)
    secrets = NodeSecrets("abcdef.0123456789abcdef", cert_pem, key_pem)
    plan = plan_node(config.cluster, config.nodes[0], secrets)
    result = host.run(install_script(plan))
    assert result.returncode == 0, result.stderr
    for text in (result.stdout, result.stderr, "\n".join(host.calls())):
        assert "0123456789abcdef" not in text and key_pem.splitlines()[1] not in text
    assert b"0123456789abcdef" in host.read(PATHS.bootstrap_kubeconfig)


def test_preinstalled_binaries_are_checked(host, test_ca):
    raw = base_config(test_ca, binaries={"source": "preinstalled"})
    plan = _plan(raw)
    result = host.run(install_script(plan))
    assert result.returncode != 0
    assert "preinstalled binary /usr/local/bin/kubelet is missing" in result.stderr
    assert list(host.root.iterdir()) == []
    for path in plan.preinstalled:
        target = host.root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy("/bin/true", target)
    result = host.run(install_script(plan))
    assert result.returncode == 0, result.stderr
    assert result.summary["binaries_changed"] == []


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.999])
def test_a_script_cut_short_in_transit_runs_nothing(host, test_ca, server, fraction):
    script = install_script(_plan(_raw(test_ca, server)))
    result = host.run(script[: int(len(script) * fraction)])
    assert "K8S_WORKERS_SUMMARY" not in result.stdout
    assert list(host.root.iterdir()) == [], "a partial script changed the host"
    assert host.calls() == []


def test_the_command_line_unpacks_the_script_from_stdin_and_the_removal_command_runs_the_placed_script(
    host, test_ca, server
):
    plan = _plan(_raw(test_ca, server))
    result = host.run_command(install_command(plan, "root"), install_stdin(plan))
    assert result.returncode == 0, result.stderr
    assert result.summary["files_changed"]
    placed = host.root / PATHS.removal_script.lstrip("/")
    assert placed.read_text() == removal_script(plan) and oct(placed.stat().st_mode & 0o777) == "0o700"
    removed = host.run_command(removal_command(plan, "root"), install_stdin(plan))  # the engine sends it too
    assert removed.returncode == 0, removed.stderr
    assert "K8S_WORKERS_REMOVED" in removed.stdout
    assert [p for p in host.root.rglob("*") if not p.is_dir()] == []  # the script removed itself too


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.999])
def test_a_stdin_cut_short_in_transit_runs_nothing(host, test_ca, server, fraction):
    plan = _plan(_raw(test_ca, server))
    stdin = install_stdin(plan)
    result = host.run_command(install_command(plan, "root"), stdin[: int(len(stdin) * fraction)])
    assert result.returncode != 0
    assert "the install script arrived incomplete: nothing ran" in result.stderr
    assert list(host.root.iterdir()) == [], "a partial script changed the host"
    assert host.calls() == []


def test_the_removal_command_leaves_a_host_that_now_holds_another_node_alone(host, test_ca, server):
    raw = _raw(test_ca, server)
    old_plan = _plan(raw)
    raw["nodes"][0]["name"] = "renamed-1"
    _installed(host, raw)
    before = host.snapshot()
    result = host.run_command(removal_command(old_plan, "root"), "")
    assert result.returncode == 0, result.stderr
    assert f"this host does not hold node {old_plan.node}: nothing removed" in result.stdout
    assert host.snapshot() == before


def test_files_that_were_there_before_are_given_back_on_removal(host, test_ca, server):
    theirs = host.root / "etc/crictl.yaml"
    theirs.parent.mkdir(parents=True)
    theirs.write_text("runtime-endpoint: unix:///run/someone-else.sock\n")
    plan = _installed(host, _raw(test_ca, server))
    assert b"containerd.sock" in host.read(PATHS.crictl_config)
    assert host.run(removal_script(plan)).returncode == 0
    assert theirs.read_text() == "runtime-endpoint: unix:///run/someone-else.sock\n"
    assert [p for p in host.root.rglob("*") if not p.is_dir()] == [theirs]


def test_what_an_earlier_config_placed_is_pruned(host, test_ca, server):
    raw = _raw(test_ca, server)
    _installed(host, raw)
    assert (host.root / PATHS.bridge_conflist.lstrip("/")).exists()
    raw["cluster"]["cni"] = {"mode": "calico"}
    raw["cluster"]["containerRuntime"] = {"type": "external", "endpoint": "unix:///run/cri-dockerd.sock"}
    for node in raw["nodes"]:
        node.pop("podCidr")
    result = host.run(install_script(_plan(raw)))
    assert result.returncode == 0, result.stderr
    pruned = set(result.summary["pruned"])
    assert {PATHS.bridge_conflist, PATHS.containerd_config, PATHS.containerd_unit, "service containerd"} <= pruned
    assert {"/usr/local/bin/containerd", "/usr/local/bin/runc", "/opt/cni/bin/bridge"} <= pruned
    for path in (PATHS.bridge_conflist, PATHS.containerd_unit, "/usr/local/bin/containerd", "/opt/cni/bin/bridge"):
        assert not (host.root / path.lstrip("/")).exists(), path
    assert "disable --now --quiet containerd" in host.calls()
    assert host.run(install_script(_plan(raw))).summary["pruned"] == []


def test_removal_under_an_old_name_leaves_a_renamed_node_alone(host, test_ca, server):
    raw = _raw(test_ca, server)
    old_plan = _installed(host, raw)
    raw["nodes"][0]["name"] = "worker-1-renamed"
    _installed(host, raw)
    before = host.snapshot()
    result = host.run(removal_script(old_plan))
    assert result.returncode == 0, result.stderr
    assert "now belongs to node worker-1-renamed" in result.stdout
    assert host.snapshot() == before


def test_interrupted_run_leftovers_are_cleaned(host, test_ca, server):
    raw = _raw(test_ca, server)
    plan = _installed(host, raw)
    for folder in ("etc/default", "etc/sysctl.d", "usr/local/bin"):
        (host.root / folder / ".k8s-workers.AbCdEf").write_text("half-written")
    (host.root / "var/lib/k8s-workers/.archive.XyZ123").mkdir()
    assert host.run(install_script(plan)).returncode == 0
    assert not list(host.root.rglob(".k8s-workers.*")) and not list(host.root.rglob(".archive.*"))


def test_an_expired_token_is_refused_until_the_node_has_joined(host, test_ca, server):
    from k8s_workers.render.node_files import NodeSecrets

    config = load_config(_raw(test_ca, server))
    expired = NodeSecrets("abcdef.0123456789abcdef", "cert\n", "key\n", token_expires_at=1_000_000_000)
    plan = plan_node(config.cluster, config.nodes[0], expired)
    result = host.run(install_script(plan))
    assert result.returncode != 0 and "bootstrap token expired" in result.stderr
    assert list(host.root.iterdir()) == []
    joined = host.root / PATHS.kubelet_kubeconfig.lstrip("/")
    joined.parent.mkdir(parents=True)
    joined.write_text("apiVersion: v1\n")  # it joined already: the token no longer matters
    assert host.run(install_script(plan)).returncode == 0


def test_a_joined_kubelet_follows_a_new_api_server(host, test_ca, server):
    raw = _raw(test_ca, server)
    _installed(host, raw)
    joined = host.root / PATHS.kubelet_kubeconfig.lstrip("/")
    joined.write_text(
        "clusters:\n- cluster:\n    certificate-authority-data: b2xk\n    server: https://192.0.2.1:6443\n  name: default-cluster\n"
    )
    raw["cluster"]["apiServer"] = "https://192.0.2.2:6443"
    result = host.run(install_script(_plan(raw)))
    assert result.returncode == 0, result.stderr
    assert PATHS.kubelet_kubeconfig in result.summary["files_changed"]
    assert result.summary["services_restarted"] == ["kubelet", "kube-proxy"]  # both talk to the API server
    text = joined.read_text()
    assert "server: https://192.0.2.2:6443" in text and "b2xk" not in text
    assert oct(joined.stat().st_mode & 0o777) == "0o600"
    assert host.run(install_script(_plan(raw))).summary["files_changed"] == []
