"""Host drift on a real node the program installed: the refresh's read-only check (one SSH session,
k8s_workers/host_check.py) sees each kind, changes nothing, and the install run again restores
exactly those and restarts exactly the services they feed. The engine suite runs the same through
`pulumi refresh`, preview and `up` (tests/engine/test_engine_lab.py)."""

from __future__ import annotations

from k8s_workers.host_check import Connection, check_host
from lab import remote
from lab.install import token_props
from tests.e2e.helpers import host_files, install

CONFIG = "/var/lib/kubelet/config.yaml"
CRICTL = "/etc/crictl.yaml"
KUBELET = "/usr/local/bin/kubelet"


def test_the_check_sees_each_kind_of_drift_and_the_install_repairs_exactly_those(installed):
    config, jobs = installed
    host = jobs[0].host
    connection = Connection.of_props(token_props(config, host.name))
    assert check_host(connection).state == "clean"
    remote.shell(
        host,
        f"echo '# edited by hand' >> {CONFIG}; chmod 0600 {CRICTL}; systemctl disable --now --quiet kube-proxy; "
        # Another kubelet put in place (a rename, as package managers do; trailing bytes: it still runs).
        f"cp -p {KUBELET} {KUBELET}.new && printf x >> {KUBELET}.new && mv -f {KUBELET}.new {KUBELET}",
    )
    before = host_files(host, [CONFIG, CRICTL, KUBELET])
    found = check_host(connection)
    assert found.state == "drift", found
    assert {(i.what, i.path) for i in found.items} == {
        ("content", CONFIG), ("mode", CRICTL), ("content", KUBELET),
        ("disabled", "kube-proxy"), ("inactive", "kube-proxy"),
    }, found  # fmt: skip
    assert found.restarts() == ("kube-proxy", "kubelet") and found.needs_drain()
    assert host_files(host, [CONFIG, CRICTL, KUBELET]) == before  # read-only: nothing touched

    (result,) = install([j for j in jobs if j.host == host]).values()
    summary = result.summary
    assert summary["files_changed"] == [CONFIG] and summary["modes_fixed"] == [CRICTL], summary
    assert summary["binaries_changed"] == ["kubelet"], summary
    assert summary["services_restarted"] == ["kubelet"], summary  # containerd untouched
    assert summary["services_enabled"] == ["kube-proxy"] and summary["services_started"] == ["kube-proxy"], summary
    assert check_host(connection).state == "clean"


def test_a_host_that_cannot_be_reached_is_unknown_not_drift(installed):
    config, jobs = installed
    props = token_props(config, jobs[0].host.name)
    props["ssh"] = {**props["ssh"], "port": 1}  # nothing listens there
    found = check_host(Connection.of_props(props), timeout=10)
    assert (found.state == "unknown" and "did not answer" not in found.summary()) or found.state == "unknown", found
    assert found.summary().startswith("unknown: "), found
