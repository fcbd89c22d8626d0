"""End to end on real systemd hosts: the program's own remote commands, run over SSH, with the
real binaries (built from Go modules) against the lab's real control plane. These tests are about
what lands on hosts; test_cluster.py is about what the cluster then sees.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import threading
import time

import pytest
import yaml
from cryptography import x509

from k8s_workers.render.host_paths import PATHS
from k8s_workers.render.node_files import PLACEHOLDER_SECRETS, node_files
from k8s_workers.render.stack import render_stack
from lab import cluster, mirror, network, remote, stack
from lab import hosts as lab_hosts
from lab.install import NodeJob, install_jobs, issue_tokens, lab_secrets, removal_jobs, run_all
from lab.paths import KNOWN_HOSTS, LAB_CA_CERT
from tests.e2e.helpers import (
    SERVICES,
    SWAP_LINE,
    all_paths,
    command_lines,
    host_files,
    install,
    main_pids,
    node_ready_since,
    run_workload,
    sha,
    snapshot,
    wait_for,
)

# ------------------------------------------------------------------ what lands


def test_every_file_of_the_file_map_lands_as_rendered(installed, tmp_path):
    config, jobs = installed
    render_stack(config, tmp_path)
    for job in jobs:
        node = next(n for n in config.nodes if n.name == job.host.name)
        node_secrets = lab_secrets(node.name, config.cluster.bootstrap_token_ttl_hours)
        with_secrets = {f.path: f.content for f in node_files(config.cluster, node, node_secrets, config.nodes)}
        placeholders = {f.path for f in node_files(config.cluster, node, PLACEHOLDER_SECRETS) if f.secret}
        on_host = host_files(job.host, [f.path for f in job.plan.files])
        # The kube-proxy credential on the host chains to the lab CA, as the program's would.
        kubeconfig = yaml.safe_load(remote.shell(job.host, f"cat {PATHS.kube_proxy_kubeconfig}"))
        client = x509.load_pem_x509_certificate(
            base64.b64decode(kubeconfig["users"][0]["user"]["client-certificate-data"])
        )
        client.verify_directly_issued_by(x509.load_pem_x509_certificate(LAB_CA_CERT.read_bytes()))
        for f in job.plan.files:
            assert on_host[f.path] is not None, f"{job.host.name}: {f.path} missing"
            mode, owner, group, _inode, _mtime, digest = on_host[f.path]  # type: ignore[misc]
            assert (mode, owner, group) == (f.mode.lstrip("0"), "root", "root"), f.path
            expected = (
                with_secrets[f.path]
                if f.path in placeholders
                else (tmp_path / node.name / f.path.lstrip("/")).read_text()
            )
            assert digest == sha(expected), f"{job.host.name}: {f.path} differs from render"


def test_units_are_loaded_enabled_running_and_verify_clean(installed):
    _, jobs = installed
    for job in jobs:
        out = remote.shell(
            job.host, "systemctl show -p Id -p LoadState -p UnitFileState -p ActiveState " + " ".join(job.plan.services)
        )
        blocks = [dict(line.split("=", 1) for line in block.splitlines()) for block in out.strip().split("\n\n")]
        assert len(blocks) == len(job.plan.services) == 4  # containerd, kubelet, kube-proxy, pod routes
        for block in blocks:
            assert (block["LoadState"], block["UnitFileState"], block["ActiveState"]) == (
                "loaded",
                "enabled",
                "active",
            ), block
        units = [f.path for f in job.plan.files if f.path.endswith(".service")]
        verify = remote.run(job.host, "systemd-analyze verify " + " ".join(units) + " 2>&1")
        assert verify.returncode == 0, verify.stdout
        assert verify.stdout.strip() == "", verify.stdout


def _expand(text: str, env: dict[str, str]) -> str:
    return re.sub(r"\$([A-Z_]+)", lambda m: env.get(m.group(1), ""), text)


def _env_file(text: str) -> dict[str, str]:
    env = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value.strip('"')
    return env


def _exec_start(unit: str) -> str:
    """The command of the unit's (last, non-empty) ExecStart=."""
    return [line for line in unit.splitlines() if line.startswith("ExecStart=/")][-1].removeprefix("ExecStart=")


def test_services_run_with_exactly_the_declared_arguments(installed):
    """What the unit files declare, expanded as systemd does, is what each service runs with."""
    _, jobs = installed
    for job in jobs:
        files = {f.path: f.content for f in job.plan.files}
        env: dict[str, str] = {}
        for match in re.finditer(r'^Environment="([A-Z_]+)=(.*)"$', files[PATHS.kubelet_dropin], re.M):
            env[match.group(1)] = match.group(2)
        env |= _env_file(files[PATHS.kubelet_flags]) | _env_file(files[PATHS.kubelet_extra_args])
        expected = {
            "kubelet": _expand(_exec_start(files[PATHS.kubelet_dropin]), env).split(),
            "kube-proxy": _exec_start(files[PATHS.kube_proxy_unit]).split(),
            "containerd": _exec_start(files[PATHS.containerd_unit]).split(),
        }
        running = command_lines(job.host)
        for service, argv in expected.items():
            assert running[service] == argv, f"{job.host.name}: {service}"
        assert f"--node-ip={job.host.address}" in running["kubelet"]


def test_swap_is_off_and_stays_off_after_a_reboot(installed, lab):
    _, jobs = installed
    job = jobs[0]
    fstab = remote.shell(job.host, "cat /etc/fstab")
    assert f"#k8s-workers# {SWAP_LINE}" in fstab
    host = lab.host(job.host.name)
    lab_hosts.power_off(host)
    lab_hosts.boot(host)
    lab_hosts.wait_until_up(host)
    lab.save()
    assert remote.shell(host, "systemctl is-enabled swap.target || true").strip() == "masked"
    assert remote.shell(host, "cat /proc/swaps").strip().splitlines()[1:] == []
    assert remote.shell(host, "systemctl is-active kubelet kube-proxy containerd").split() == ["active"] * 3
    cluster.wait_ready([host.name])


def test_sysctl_and_module_files_are_in_place_and_limits_are_reported(installed):
    _, jobs = installed
    for job in jobs:
        out = remote.shell(job.host, f"cat {PATHS.sysctl} {PATHS.modules_load}")
        assert "net.ipv4.ip_forward = 1" in out and "br_netfilter" in out
        # In effect on the host: what the kubelet and kube-proxy need (set by the lab from outside,
        # as a container cannot; the install found them right and left them alone).
        values = remote.shell(
            job.host, "cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/bridge/bridge-nf-call-iptables"
        )
        assert values.split() == ["1", "1"]
    # What a container cannot apply, the install reports by name: the one setting the lab leaves to it.
    config, _ = installed
    result = install(install_jobs(config, [jobs[0].host]))[jobs[0].host.name]
    warnings = [w for w in result.summary["warnings"] if "cgroup v1" not in w]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("sysctl net.bridge.bridge-nf-call-ip6tables=1 could not be applied")
    assert PATHS.sysctl in warnings[0]


def test_a_cgroup_v1_host_is_refused_unless_allowed(lab, lab_config, systemd_hosts):
    """This machine is cgroup v1: the lab stack opts in (allowCgroupV1), and without it the
    install refuses before any change, saying what to do."""
    if not stack.cgroup_v1_machine():
        pytest.skip("this machine uses cgroup v2: the refusal path needs a cgroup v1 host")
    config = lab_config(edit=lambda raw: raw["defaults"].pop("allowCgroupV1"))
    run_all(removal_jobs(config, systemd_hosts[:1]))
    job = install_jobs(config, systemd_hosts[:1])[0]
    result = remote.run(job.host, job.command, job.stdin)
    assert result.returncode != 0
    assert "uses cgroup v1, which the kubelet refuses from Kubernetes 1.35 on" in result.stderr
    assert "allowCgroupV1: true" in result.stderr
    assert all(v is None for v in host_files(job.host, [*all_paths(job.plan), PATHS.state_dir]).values())
    issue_tokens(config, systemd_hosts[:1])  # the node is registered anew: its token must be live
    allowed = install(install_jobs(lab_config(), systemd_hosts[:1]))[job.host.name]
    assert any("cgroup v1" in w and "being removed" in w for w in allowed.summary["warnings"])
    kubelet_config = yaml.safe_load(remote.shell(job.host, f"cat {PATHS.kubelet_config}"))
    assert kubelet_config["failCgroupV1"] is False


# ------------------------------------------------------------------ re-runs and changes


def test_second_install_writes_nothing_and_restarts_nothing(installed):
    _, jobs = installed
    before = {j.host.name: host_files(j.host, all_paths(j.plan)) for j in jobs}
    pids = {j.host.name: main_pids(j.host) for j in jobs}
    ready_since = {j.host.name: node_ready_since(j.host.name) for j in jobs}
    results = install(jobs)
    for job in jobs:
        summary = results[job.host.name].summary
        for key in ("files_changed", "modes_fixed", "binaries_changed", "services_restarted", "services_started"):
            assert summary[key] == [], (job.host.name, key)
        assert host_files(job.host, all_paths(job.plan)) == before[job.host.name]  # inode and mtime too
        assert main_pids(job.host) == pids[job.host.name]
        assert node_ready_since(job.host.name) == ready_since[job.host.name]  # the Node stayed Ready


def _changed_pids(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {service for service in SERVICES if before[service] != after[service]}


@pytest.mark.parametrize(
    ("edit", "changed_file", "service"),
    [
        (lambda raw: raw["defaults"].update(maxPods=77), PATHS.kubelet_config, "kubelet"),
        (lambda raw: raw["cluster"].update(kubeProxy={"mode": "nftables"}), PATHS.kube_proxy_config, "kube-proxy"),
    ],
    ids=["kubelet-setting", "proxy-mode"],
)
def test_one_change_rewrites_one_file_and_restarts_one_service(
    installed, lab_config, systemd_hosts, edit, changed_file, service
):
    _, jobs = installed
    pids = {j.host.name: main_pids(j.host) for j in jobs}
    results = install(install_jobs(lab_config(edit=edit), systemd_hosts))
    for job in jobs:
        summary = results[job.host.name].summary
        assert summary["files_changed"] == [changed_file]
        assert summary["services_restarted"] == [service]
        assert _changed_pids(pids[job.host.name], main_pids(job.host)) == {service}
    names = [j.host.name for j in jobs]
    if service == "kubelet":
        assert "maxPods: 77" in remote.shell(jobs[0].host, f"cat {PATHS.kubelet_config}")
        wait_for(  # the restarted kubelet reports the new capacity
            "pods capacity 77 on every Node",
            lambda: all(cluster.nodes()[n]["status"]["capacity"]["pods"] == "77" for n in names),
        )
    cluster.wait_ready(names)


def test_new_binary_checksum_replaces_that_binary(installed, lab_config, systemd_hosts, sums):
    _, jobs = installed
    changed = lab_config(generations={"kubelet": 2})
    results = install(install_jobs(changed, systemd_hosts))
    for job in jobs:
        summary = results[job.host.name].summary
        assert summary["binaries_changed"] == ["kubelet"]
        assert summary["files_changed"] == []
        assert summary["services_restarted"] == ["kubelet"]
        digest = host_files(job.host, ["/usr/local/bin/kubelet"])["/usr/local/bin/kubelet"][-1]  # type: ignore[index]
        assert digest == sums["kubelet"][2]
    cluster.wait_ready([j.host.name for j in jobs])


# ------------------------------------------------------------------ removal


def test_removal_leaves_no_file_or_unit_of_ours(installed, lab_config, systemd_hosts, clean_snapshots):
    """After pods ran (every node has its own and kube-proxy programmed a Service), removal leaves
    no mount, network namespace, link, route, iptables chain or rule, nftables table, file,
    directory, unit or process that was not there before the first install."""
    config, jobs = installed
    run_workload([j.host.name for j in jobs])
    results = run_all(removal_jobs(config, systemd_hosts))
    for job in jobs:
        result = results[job.host.name]
        assert not isinstance(result, remote.HostError), result
        assert snapshot(job.host).added_since(clean_snapshots[job.host.name]) == {}, job.host.name
        leftovers = {
            p for p, v in host_files(job.host, [*all_paths(job.plan), PATHS.state_dir]).items() if v is not None
        }
        assert leftovers == set()
        for service in SERVICES:
            state = remote.shell(job.host, f"systemctl show -p LoadState --value {service}").strip()
            assert state == "not-found", service
        assert SWAP_LINE in remote.shell(job.host, "cat /etc/fstab").splitlines()
        assert remote.shell(job.host, "systemctl is-enabled swap.target 2>&1 || true").strip() != "masked"


# ------------------------------------------------------------------ faults


def _kill_install_after(job: NodeJob, delay: float) -> remote.RemoteResult:
    command = job.command.replace("exec /bin/bash -s", "exec -a k8sw-install /bin/bash -s", 1)
    assert command != job.command
    killer = threading.Timer(delay, lambda: remote.run(job.host, "pkill -9 -f '^k8sw-install' || true"))
    killer.start()
    try:
        return remote.run(job.host, command, job.stdin)
    finally:
        killer.join()


def test_killed_install_leaves_old_or_new_never_partial_and_converges(installed, lab_config, systemd_hosts):
    _, jobs_a = installed
    config_b = lab_config(
        generations={"kubelet": 2, "kube-proxy": 2, "containerd": 2, "cni-plugins": 2},
        edit=lambda raw: raw["defaults"].update(maxPods=55),
    )
    job_a = jobs_a[0]
    job_b = next(j for j in install_jobs(config_b, systemd_hosts) if j.host.name == job_a.host.name)
    paths = all_paths(job_a.plan)
    # The two complete states (content hashes), known before any run is interrupted.
    old = {p: v[-1] for p, v in host_files(job_a.host, paths).items()}  # type: ignore[index]
    install([job_b])
    new = {p: v[-1] for p, v in host_files(job_a.host, paths).items()}  # type: ignore[index]
    install([job_a])
    killed = 0
    for delay in (0.05, 0.15, 0.3, 0.5):
        result = _kill_install_after(job_b, delay)
        killed += result.returncode != 0
        for path, seen in host_files(job_a.host, paths).items():
            assert seen is not None, path
            assert seen[-1] in (old[path], new[path]), f"{path} is neither old nor new"
        # Converged: a full run afterwards leaves exactly B, and nothing further to do.
        install([job_b])
        assert {p: v[-1] for p, v in host_files(job_a.host, paths).items()} == new  # type: ignore[index]
        assert install([job_b])[job_a.host.name].summary["services_restarted"] == []
        assert remote.shell(job_a.host, "ls /var/lib/k8s-workers/pending").strip() == ""
        leftovers = remote.shell(job_a.host, "find / -xdev -name '.k8s-workers.*' -o -xdev -name '.archive.*'")
        assert leftovers.strip() == "", leftovers
        install([job_a])  # back to A for the next round
    assert killed >= 1, "no run was interrupted: the kill came too late every time"
    cluster.wait_ready([job_a.host.name])


def test_wrong_sha256_stops_the_install_and_keeps_the_old_binary(installed, lab_config, systemd_hosts, sums):
    _, jobs = installed

    def wrong(raw: dict) -> None:
        # The mirror serves generation 2; the config expects a checksum nothing has.
        kubelet = raw["cluster"]["binaries"]["artifacts"]["kubelet"]
        kubelet["url"] = mirror.url_template("kubelet", 2)
        kubelet["sha256"] = {"amd64": sha("not what the mirror serves")}

    results = run_all(install_jobs(lab_config(edit=wrong), systemd_hosts))
    for job in jobs:
        error = results[job.host.name]
        assert isinstance(error, remote.HostError)
        assert str(error).startswith(f"{job.host.name}: ")
        assert "sha256 of kubelet" in str(error) and "left as it was" in str(error)
        digest = host_files(job.host, ["/usr/local/bin/kubelet"])["/usr/local/bin/kubelet"][-1]  # type: ignore[index]
        assert digest == sums["kubelet"][1]


def test_one_host_down_fails_only_that_host(installed, systemd_hosts):
    _, jobs = installed
    nobody = str(network.SUBNET.broadcast_address - 1)  # on the lab network, no host there
    down = lab_hosts.LabHost("lab-down", nobody, "/nonexistent", None, jobs[0].host.host_key)
    ghost = NodeJob(down, jobs[0].plan, jobs[0].command, jobs[0].stdin)
    started = time.monotonic()
    results = run_all([*jobs, ghost])
    assert time.monotonic() - started < 60
    assert isinstance(results["lab-down"], remote.HostError)
    assert str(results["lab-down"]).startswith("lab-down: ")
    for job in jobs:
        assert not isinstance(results[job.host.name], remote.HostError)


def test_wrong_host_key_is_refused(installed, systemd_hosts, tmp_path):
    _, jobs = installed
    first, second = systemd_hosts[:2]
    lying = tmp_path / "known_hosts"
    lying.write_text(f"{first.address} {second.host_key}\n")
    result = remote.run(first, jobs[0].command, jobs[0].stdin, known_hosts=lying)
    assert result.returncode != 0
    assert "Host key verification failed" in result.stderr or "HOST IDENTIFICATION HAS CHANGED" in result.stderr
    assert KNOWN_HOSTS.exists()


def test_host_without_systemd_is_refused_before_any_change(lab_config, bare_host):
    config = lab_config(
        edit=lambda raw: raw["nodes"].append(
            {
                "name": bare_host.name,
                "address": bare_host.address,
                "podCidr": "10.200.99.0/24",
                "ssh": {"hostKey": bare_host.host_key},
            }
        )
    )
    job = next(j for j in install_jobs(config, [bare_host]) if j.host.name == bare_host.name)
    result = remote.run(bare_host, job.command, job.stdin)
    assert result.returncode != 0
    assert "systemd is not the init system" in result.stderr
    assert all(v is None for v in host_files(bare_host, [*all_paths(job.plan), PATHS.state_dir]).values())


def test_host_without_a_needed_tool_is_refused_before_any_change(lab, lab_config, systemd_hosts):
    config = lab_config()
    job = install_jobs(config, systemd_hosts)[0]
    run_all(removal_jobs(config, [job.host]))
    hidden = remote.shell(job.host, "which -a ip | xargs -n1 readlink -f | sort -u").split()
    remote.shell(job.host, "".join(f"mv {p} {p}.hidden; " for p in hidden))
    try:
        result = remote.run(job.host, job.command, job.stdin)
        assert result.returncode != 0
        assert "missing tools: ip " in result.stderr  # bridge mode routes pod networks with iproute2
        assert "conntrack" not in result.stderr  # kube-proxy no longer needs it (1.32+)
        assert all(v is None for v in host_files(job.host, [*all_paths(job.plan), PATHS.state_dir]).values())
    finally:
        remote.shell(job.host, "".join(f"mv {p}.hidden {p}; " for p in hidden))


def test_lab_hosts_live_on_the_lab_network_only(lab):
    for host in lab.hosts:
        address = ipaddress.ip_address(host.address)
        assert address in network.SUBNET and address != ipaddress.ip_address(network.GATEWAY)
        assert address not in ipaddress.ip_network("192.0.2.0/24")  # this machine's own network
        routes = remote.shell(host, "ip route").splitlines()
        assert not [r for r in routes if r.startswith("default")], routes  # nothing beyond this machine
        sshd = remote.shell(host, "ss -ltnpH | awk '/sshd/ {print $4}'").split()
        assert sshd == [f"{host.address}:22"], sshd


def test_lab_is_idempotent(lab):
    from lab.__main__ import up

    before = [(h.name, h.pid) for h in lab.hosts]
    control_plane = dict(lab.control_plane)
    again = up(nodes=len([h for h in lab.hosts if h.init == "systemd"]), bare=1)
    assert [(h.name, h.pid) for h in again.hosts] == before
    assert again.control_plane == control_plane


def test_the_suite_runs_what_the_program_declares(lab, sums, systemd_hosts, lab_config):
    """The program, run under mocks on the lab stack, declares the same command line (secret files
    are named, not hashed, in it) and the same non-secret file bytes as the jobs this suite runs."""
    from tests.harness import run_program
    from tests.placed import placed_files

    run = run_program(stack.lab_config(lab.hosts, sums))
    assert run.error is None, run.error
    secret_paths = {PATHS.bootstrap_kubeconfig, PATHS.kube_proxy_kubeconfig}
    for job in install_jobs(lab_config(), systemd_hosts):
        declared = run.named(f"{job.host.name}-install").inputs
        assert declared["create"] == job.command
        assert declared["delete"] == removal_jobs(lab_config(), [job.host])[0].command
        program_files, suite_files = placed_files(declared["stdin"]), placed_files(job.stdin)
        assert set(program_files) == set(suite_files)
        for path in set(program_files) - secret_paths:
            assert program_files[path] == suite_files[path], path
