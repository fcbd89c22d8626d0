"""The drift check's output read into a report (k8s_workers/decisions/host_drift.py); the check itself
runs on real hosts in the lab suite (tests/e2e/test_drift.py) and under the engine
(tests/engine/test_engine_lab.py)."""

from __future__ import annotations

import subprocess

import pytest

from k8s_workers.decisions.host_drift import HostCheck, parse_check, unknown
from k8s_workers.scripts.commands import check_script


def test_a_clean_host_and_a_host_never_recorded():
    assert parse_check("checked 31\n") == HostCheck("clean")
    assert parse_check("unrecorded\n").state == "unrecorded"


def test_drift_lines_name_paths_services_and_what_differs():
    found = parse_check(
        "drift content kubelet /var/lib/kubelet/config.yaml\n"
        "drift mode - /etc/crictl.yaml\n"
        "drift disabled kube-proxy kube-proxy\n"
        "drift inactive kube-proxy kube-proxy\n"
        "checked 31\n"
    )
    assert found.state == "drift"
    assert found.summary() == (
        "drift: /var/lib/kubelet/config.yaml (content), /etc/crictl.yaml (mode), kube-proxy (disabled), "
        "kube-proxy (inactive)"
    )
    assert found.restarts() == ("kube-proxy", "kubelet")  # a mode is fixed without a restart
    assert found.needs_drain()  # the kubelet restarts
    assert not parse_check("drift inactive kube-proxy kube-proxy\nchecked 3\n").needs_drain()


@pytest.mark.parametrize("output", ["", "bash: line 1: sha256sum: command not found\n", "drift content\nchecked 1\n"])
def test_anything_else_is_not_taken_for_a_clean_host(output):
    with pytest.raises(ValueError):
        parse_check(output)


def test_unknown_says_why_in_one_line():
    assert unknown("Connection refused\nmore").summary() == "unknown: Connection refused"


def test_the_check_script_is_valid_shell_and_holds_no_secret():
    script = check_script("n1")
    subprocess.run(["shellcheck", "-s", "bash", "-"], input=script, text=True, check=True)
    assert "/var/lib/k8s-workers" in script and "base64" not in script
