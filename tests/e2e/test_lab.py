"""End to end on real systemd hosts: the program's own remote commands, run over SSH.

The binaries the mirror serves are PLACEHOLDERS (lab/placeholder.c), not Kubernetes: they
log the arguments they were started with and stay running. Real binaries come later.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shlex
import threading
import time

import pytest
import yaml
from cryptography import x509

from components.config import StackConfig
from components.host_paths import PATHS
from components.install_plan import NodePlan
from components.node_files import PLACEHOLDER_SECRETS, node_files
from components.render import render_stack
from lab import hosts as lab_hosts
from lab import remote
from lab.install import NodeJob, install_jobs, lab_secrets, removal_jobs, run_all
from lab.paths import KNOWN_HOSTS, LAB_CA_CERT

SERVICES = ("containerd", "kubelet", "kube-proxy")
PLACEHOLDER_LOG = "/var/log/k8s-workers-placeholders.log"
SWAP_LINE = "/swapfile none swap sw 0 0"


# ------------------------------------------------------------------ helpers


def host_files(host: lab_hosts.LabHost, paths: list[str]) -> dict[str, tuple[str, ...] | None]:
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


def placeholder_starts(host: lab_hosts.LabHost) -> list[tuple[str, str]]:
    """(service binary, arguments) for every placeholder start, oldest first."""
    out = remote.shell(host, f"cat {PLACEHOLDER_LOG} 2>/dev/null || true")
    starts = []
    for line in out.splitlines():
        match = re.match(r"(\S+) pid=\d+ args:(.*)$", line)
        if match:
            starts.append((match.group(1), match.group(2).strip()))
    return starts


def main_pids(host: lab_hosts.LabHost) -> dict[str, str]:
    out = remote.shell(host, "systemctl show -p MainPID --value " + " ".join(SERVICES))
    return dict(zip(SERVICES, out.split(), strict=True))


def install(jobs: list[NodeJob]) -> dict[str, remote.RemoteResult]:
    results = run_all(jobs)
    failures = [str(r) for r in results.values() if isinstance(r, remote.HostError)]
    assert not failures, "\n".join(failures)
    return results  # type: ignore[return-value]


def sha(data: str | bytes) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


@pytest.fixture
def installed(lab, systemd_hosts, lab_config) -> tuple[StackConfig, list[NodeJob]]:
    """Every systemd host cleaned, given a swap line in fstab, then installed with the lab stack."""
    config = lab_config()
    run_all(removal_jobs(config, systemd_hosts))
    for host in systemd_hosts:
        remote.shell(
            host,
            f"rm -f {PLACEHOLDER_LOG}; grep -q '^{SWAP_LINE}' /etc/fstab || echo '{SWAP_LINE}' >> /etc/fstab",
        )
    jobs = install_jobs(config, systemd_hosts)
    install(jobs)
    return config, jobs


# ------------------------------------------------------------------ what lands


def test_every_file_of_the_file_map_lands_as_rendered(installed, tmp_path):
    config, jobs = installed
    render_stack(config, tmp_path)
    for job in jobs:
        node = next(n for n in config.nodes if n.name == job.host.name)
        with_secrets = {f.path: f.content for f in node_files(config.cluster, node, lab_secrets(node.name))}
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
            job.host, "systemctl show -p Id -p LoadState -p UnitFileState -p ActiveState " + " ".join(SERVICES)
        )
        blocks = [dict(line.split("=", 1) for line in block.splitlines()) for block in out.strip().split("\n\n")]
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
    """What the unit files declare, expanded as systemd does, is what each placeholder saw."""
    _, jobs = installed
    for job in jobs:
        files = {f.path: f.content for f in job.plan.files}
        env: dict[str, str] = {}
        for match in re.finditer(r'^Environment="([A-Z_]+)=(.*)"$', files[PATHS.kubelet_dropin], re.M):
            env[match.group(1)] = match.group(2)
        env |= _env_file(files[PATHS.kubelet_flags]) | _env_file(files[PATHS.kubelet_extra_args])
        expected = {
            "kubelet": " ".join(_expand(_exec_start(files[PATHS.kubelet_dropin]), env).split()[1:]),
            "kube-proxy": _exec_start(files[PATHS.kube_proxy_unit]).split(" ", 1)[1],
            "containerd": _exec_start(files[PATHS.containerd_unit]).split(" ", 1)[1],
        }
        seen = dict(placeholder_starts(job.host))
        for service, args in expected.items():
            assert seen[service] == args, f"{job.host.name}: {service}"
        assert f"--node-ip={job.host.address}" in seen["kubelet"]


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


def test_sysctl_and_module_files_are_in_place_and_limits_are_reported(installed):
    _, jobs = installed
    for job in jobs:
        out = remote.shell(job.host, f"cat {PATHS.sysctl} {PATHS.modules_load}")
        assert "net.ipv4.ip_forward = 1" in out and "br_netfilter" in out
    # A container cannot apply kernel settings: the first install said so, by name.
    config, _ = installed
    result = install(install_jobs(config, [jobs[0].host]))[jobs[0].host.name]
    warnings = result.summary["warnings"]
    assert warnings, "nothing reported although /proc/sys is read-only in the lab"
    assert all(re.search(r"(sysctl \S+=\S+|kernel module \S+)", w) for w in warnings)
    assert any(PATHS.sysctl in w for w in warnings)


# ------------------------------------------------------------------ re-runs and changes


def test_second_install_writes_nothing_and_restarts_nothing(installed):
    _, jobs = installed
    before = {j.host.name: host_files(j.host, all_paths(j.plan)) for j in jobs}
    starts = {j.host.name: placeholder_starts(j.host) for j in jobs}
    pids = {j.host.name: main_pids(j.host) for j in jobs}
    results = install(jobs)
    for job in jobs:
        summary = results[job.host.name].summary
        for key in ("files_changed", "modes_fixed", "binaries_changed", "services_restarted", "services_started"):
            assert summary[key] == [], (job.host.name, key)
        assert host_files(job.host, all_paths(job.plan)) == before[job.host.name]  # inode and mtime too
        assert placeholder_starts(job.host) == starts[job.host.name]
        assert main_pids(job.host) == pids[job.host.name]


def _changed_pids(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {service for service in SERVICES if before[service] != after[service]}


@pytest.mark.parametrize(
    ("edit", "changed_file", "service"),
    [
        (lambda raw: raw["defaults"].update(kubelet={"maxPods": 77}), PATHS.kubelet_config, "kubelet"),
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
    if service == "kubelet":
        assert "maxPods: 77" in remote.shell(jobs[0].host, f"cat {PATHS.kubelet_config}")


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


# ------------------------------------------------------------------ removal


def test_removal_leaves_no_file_or_unit_of_ours(installed, lab_config, systemd_hosts):
    config, jobs = installed
    results = run_all(removal_jobs(config, systemd_hosts))
    for job in jobs:
        result = results[job.host.name]
        assert not isinstance(result, remote.HostError), result
        leftovers = {
            p for p, v in host_files(job.host, [*all_paths(job.plan), PATHS.state_dir]).items() if v is not None
        }
        assert leftovers == set()
        for service in SERVICES:
            state = remote.shell(job.host, f"systemctl show -p LoadState --value {service}").strip()
            assert state == "not-found", service
        for folder in ("/etc/kubernetes", "/var/lib/kubelet", "/var/lib/kube-proxy", "/etc/containerd"):
            assert remote.run(job.host, f"test -e {folder}").returncode != 0, folder
        assert SWAP_LINE in remote.shell(job.host, "cat /etc/fstab").splitlines()
        wants = remote.shell(job.host, "ls /etc/systemd/system/multi-user.target.wants/").split()
        assert not {f"{service}.service" for service in SERVICES} & set(wants), wants
        assert remote.shell(job.host, "systemctl is-enabled swap.target 2>&1 || true").strip() != "masked"


# ------------------------------------------------------------------ faults


def _kill_install_after(job: NodeJob, delay: float) -> remote.RemoteResult:
    command = job.command.replace("/bin/bash -s", "exec -a k8sw-install /bin/bash -s", 1)
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
        edit=lambda raw: raw["defaults"].update(kubelet={"maxPods": 55}, labels={"node.kubernetes.io/pool": "b"}),
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


def test_wrong_sha256_stops_the_install_and_keeps_the_old_binary(installed, lab_config, systemd_hosts, sums):
    _, jobs = installed

    def wrong(raw: dict) -> None:
        # The mirror serves generation 2; the config expects a checksum nothing has.
        kubelet = raw["cluster"]["binaries"]["artifacts"]["kubelet"]
        kubelet["url"] = kubelet["url"].replace("-g1", "-g2")
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
    down = lab_hosts.LabHost("lab-down", "127.0.0.60", "/nonexistent", None, jobs[0].host.host_key)
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
                "podCidr": "10.244.99.0/24",
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
    run_all(removal_jobs(config, systemd_hosts))
    job = install_jobs(config, systemd_hosts)[0]
    remote.shell(job.host, "mv /usr/sbin/conntrack /usr/sbin/conntrack.hidden")
    try:
        result = remote.run(job.host, job.command, job.stdin)
        assert result.returncode != 0
        assert "missing tools: conntrack" in result.stderr
        assert all(v is None for v in host_files(job.host, [*all_paths(job.plan), PATHS.state_dir]).values())
    finally:
        remote.shell(job.host, "mv /usr/sbin/conntrack.hidden /usr/sbin/conntrack")


def test_lab_hosts_listen_only_on_loopback(lab):
    for host in lab.hosts:
        assert host.address.startswith("127.0.0.") and host.address != "127.0.0.1"
        # Lab hosts share this machine's network: only sockets of the host's own processes count.
        listening = remote.shell(host, "ss -ltnpH | awk '/users:/ {print $4}'").split()
        assert listening == [f"{host.address}:22"], listening


def test_lab_is_idempotent(lab):
    from lab.__main__ import up

    before = [(h.name, h.pid) for h in lab.hosts]
    again = up(nodes=len([h for h in lab.hosts if h.init == "systemd"]), bare=1)
    assert [(h.name, h.pid) for h in again.hosts] == before


def test_the_suite_runs_what_the_program_declares(lab, sums, systemd_hosts, lab_config):
    """The program, run under mocks on the lab stack, declares the same command line (but for the
    secrets' versions) and the same non-secret file bytes as the jobs this suite runs."""
    from lab import stack
    from tests.harness import run_program
    from tests.placed import placed_files

    run = run_program(stack.lab_config(lab.hosts, sums))
    assert run.error is None, run.error
    secret_paths = {PATHS.bootstrap_kubeconfig, PATHS.kube_proxy_kubeconfig}
    for job in install_jobs(lab_config(), systemd_hosts):
        declared = run.named(f"{job.host.name}-install").inputs

        def public_lines(command: str) -> list[str]:
            return [line for line in command.splitlines() if not any(p in line for p in secret_paths)]

        assert public_lines(declared["create"]) == public_lines(job.command)
        assert declared["delete"] == removal_jobs(lab_config(), [job.host])[0].command
        program_files, suite_files = placed_files(declared["stdin"]), placed_files(job.stdin)
        assert set(program_files) == set(suite_files)
        for path in set(program_files) - secret_paths:
            assert program_files[path] == suite_files[path], path
