"""The policy pack (policy/): each validation function called directly with made-up resources,
passing and failing, and the pack run over what the program declares under mocks (the engine that
would run it is not here)."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)

from k8s_workers.policy import cis_kubelet
from k8s_workers.policy.rules import REMOTE_COMMAND, WORKER_NODE
from policy.k8s_workers_policies import (
    DYNAMIC_RESOURCE,
    policies,
    validate_host_keys,
    validate_kubelet_cis,
    validate_kubelet_cis_manual,
    validate_secret_commands,
    validate_token_expiry,
)
from tests.harness import Run, run_program

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
QUIET = {"logging": "none", "addPreviousOutputInEnv": False}


def _opts(secret_outputs: list[str] | None = None, parent: str | None = None) -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), secret_outputs or [], parent)


def _resource(type_: str, name: str, props: dict[str, Any], parent: PolicyResource | None = None) -> PolicyResource:
    urn = f"urn:pulumi:dev::k8s-workers::{type_}::{name}"
    return PolicyResource(type_, props, urn, name, _opts(), None, parent, [], {})


def _stack(validate, resources: list[PolicyResource]) -> list[str]:
    found: list[str] = []
    validate(StackValidationArgs(resources), lambda message, urn=None: found.append(message))
    return found


def _resource_check(validate, type_: str, props: dict[str, Any], secret_outputs=None, config=None) -> list[str]:
    found: list[str] = []
    args = ResourceValidationArgs(type_, props, f"urn:x::{type_}::r", "r", _opts(secret_outputs), None, config)
    validate(args, lambda message, urn=None: found.append(message))
    return found


def _node(name: str, waived: bool = False, config: dict | None = None, args: list[str] | None = None) -> PolicyResource:
    props = {"insecureIgnoreHostKey": waived, "kubeletConfiguration": config, "kubeletArgs": args or []}
    return _resource(WORKER_NODE, name, props)


def _install(node: PolicyResource, host_key: str | None) -> PolicyResource:
    connection = {"host": "192.0.2.11", "user": "root", **({"hostKey": host_key} if host_key else {})}
    return _resource(REMOTE_COMMAND, f"{node.name}-install", {"connection": connection, "stdin": "x", **QUIET}, node)


# ---------------------------------------------------------------- host keys
def test_a_pinned_host_key_passes():
    node = _node("worker-1")
    assert _stack(validate_host_keys, [node, _install(node, HOST_KEY)]) == []


def test_a_node_without_a_host_key_is_refused_unless_it_waives_it():
    plain, waived = _node("worker-1"), _node("worker-2", waived=True)
    found = _stack(validate_host_keys, [plain, _install(plain, None), waived, _install(waived, None)])
    assert len(found) == 1
    assert found[0].startswith("worker-1-install: the SSH connection to 192.0.2.11 accepts any host key")
    assert "ssh.insecureIgnoreHostKey" in found[0]


def test_a_command_outside_a_node_cannot_claim_a_waiver():
    other = _resource("k8s-workers:index:Other", "x", {"insecureIgnoreHostKey": True})
    assert len(_stack(validate_host_keys, [other, _install(other, None)])) == 1


# ---------------------------------------------------------------- commands that carry secrets
def test_a_quiet_command_with_secrets_on_stdin_passes():
    props = {"stdin": "token", **QUIET}
    assert _resource_check(validate_secret_commands, REMOTE_COMMAND, props, ["stdout", "stderr"]) == []


@pytest.mark.parametrize(
    ("props", "secret_outputs", "expected"),
    [
        ({"stdin": "token", "logging": "stdoutAndStderr", "addPreviousOutputInEnv": False}, ["stdout", "stderr"], "logs its output (logging: stdoutAndStderr"),
        ({"stdin": "token", "addPreviousOutputInEnv": False}, ["stdout", "stderr"], "the default, stdout and stderr"),
        ({"environment": {"TOKEN": "t"}, "logging": "none"}, ["stdout", "stderr"], "addPreviousOutputInEnv: false"),
        ({"stdin": "token", **QUIET}, ["stdout"], "its stderr are not secret outputs"),
    ],
)  # fmt: skip
def test_a_command_with_secrets_that_shows_its_output_is_refused(props, secret_outputs, expected):
    found = _resource_check(validate_secret_commands, "command:local:Command", props, secret_outputs)
    assert any(expected in f for f in found), found


def test_a_command_without_secrets_may_log():
    assert _resource_check(validate_secret_commands, REMOTE_COMMAND, {"create": "uptime", "logging": "stdout"}) == []


# ---------------------------------------------------------------- bootstrap token lifetime
MEMBERSHIP = {"node": "worker-1", "tokenId": "abcdef", "tokenSecret": "0123456789abcdef"}


def test_a_token_within_the_bound_passes():
    assert _resource_check(validate_token_expiry, DYNAMIC_RESOURCE, {**MEMBERSHIP, "ttlHours": 24}) == []


def test_a_token_beyond_the_bound_is_refused_and_the_bound_is_configurable():
    props = {**MEMBERSHIP, "ttlHours": 48}
    (found,) = _resource_check(validate_token_expiry, DYNAMIC_RESOURCE, props)
    assert "worker-1" in found and "48 h" in found and "24 h" in found
    assert _resource_check(validate_token_expiry, DYNAMIC_RESOURCE, props, config={"maxTtlHours": 72}) == []


def test_a_token_without_expiry_is_refused():
    (found,) = _resource_check(validate_token_expiry, DYNAMIC_RESOURCE, {**MEMBERSHIP, "ttlHours": 0})
    assert "no expiry" in found


def test_other_dynamic_resources_are_not_tokens():
    assert _resource_check(validate_token_expiry, DYNAMIC_RESOURCE, {"node": "worker-1", "ttlHours": 999}) == []


# ---------------------------------------------------------------- CIS 4.2 on the rendered kubelet
def _program_run(test_ca, ssh_key, edit=None) -> Run:
    from tests.conftest import base_config

    raw = base_config(test_ca, ssh_key)
    if edit:
        edit(raw)
    result = run_program(raw)
    assert result.error is None, result.error
    return result


@pytest.fixture(scope="module")
def rendered(test_ca, ssh_key) -> dict[str, dict[str, Any]]:
    """Each node's WorkerNode facts as the program registers them."""
    return _facts(_program_run(test_ca, ssh_key))


def _facts(run) -> dict[str, dict[str, Any]]:  # type: ignore[no-untyped-def]
    """node -> what its WorkerNode registers as outputs: what the engine gives the pack's stack
    policies for a component (its outputs, not its inputs: seen with the real engine)."""
    return {urn.rsplit("::", 1)[1]: o for urn, o in run.component_outputs.items() if WORKER_NODE in urn}


def test_the_program_registers_each_nodes_kubelet_facts_for_the_pack(rendered):
    assert set(rendered) == {"worker-1", "worker-2.example.org"}
    for facts in rendered.values():
        assert facts["insecureIgnoreHostKey"] is False
        assert facts["kubeletConfiguration"]["kind"] == "KubeletConfiguration"
        assert any(a.startswith("--node-ip=") for a in facts["kubeletArgs"])
    assert rendered["worker-2.example.org"]["kubeletConfiguration"]["maxPods"] == 50


def test_every_kubelet_the_program_renders_meets_cis_4_2(rendered):
    nodes = [_node(name, config=f["kubeletConfiguration"], args=f["kubeletArgs"]) for name, f in rendered.items()]
    assert _stack(validate_kubelet_cis, nodes) == []
    assert _stack(validate_kubelet_cis_manual, nodes) == []


def _base(rendered) -> dict[str, Any]:
    return rendered["worker-1"]["kubeletConfiguration"]


@pytest.mark.parametrize(
    ("item", "override", "args"),
    [
        ("4.2.1", {"authentication": {"anonymous": {"enabled": True}}}, []),
        ("4.2.2", {"authorization": {"mode": "AlwaysAllow"}}, []),
        ("4.2.3", {"authentication": {"x509": {"clientCAFile": ""}}}, []),
        ("4.2.4", {"readOnlyPort": 10255}, []),
        ("4.2.4", {}, ["--read-only-port=10255"]),  # a flag wins over the file
        ("4.2.5", {"streamingConnectionIdleTimeout": "0s"}, []),
        ("4.2.6", {"makeIPTablesUtilChains": False}, []),
        ("4.2.10", {"rotateCertificates": False}, []),
        ("4.2.11", {"featureGates": {"RotateKubeletServerCertificate": False}}, []),
        ("4.2.12", {"tlsCipherSuites": ["TLS_RSA_WITH_AES_128_CBC_SHA"]}, []),
        ("4.2.12", {"tlsCipherSuites": []}, []),
        ("4.2.13", {"podPidsLimit": -1}, []),
    ],
)  # fmt: skip
def test_a_weakened_kubelet_fails_its_cis_item(rendered, item, override, args):
    from k8s_workers.config.loader import deep_merge

    config = deep_merge(_base(rendered), override)
    found = _stack(validate_kubelet_cis, [_node("worker-1", config=config, args=args)])
    assert [f.split(": ", 2)[1] for f in found] == [f"CIS {item}"], found
    assert found[0].startswith("node worker-1: CIS")


@pytest.mark.parametrize(
    ("item", "override", "args"),
    [
        ("4.2.7", {}, ["--hostname-override=worker-1"]),
        ("4.2.9", {"serverTLSBootstrap": False}, []),
        ("4.2.14", {"seccompDefault": False}, []),
    ],
)
def test_manual_items_are_advisory(rendered, item, override, args):
    from k8s_workers.config.loader import deep_merge

    node = _node("worker-1", config=deep_merge(_base(rendered), override), args=args)
    assert _stack(validate_kubelet_cis, [node]) == []
    found = _stack(validate_kubelet_cis_manual, [node])
    assert [f.split(": ", 2)[1] for f in found] == [f"CIS {item}"], found


def test_the_program_with_self_signed_serving_and_a_hostname_override_is_flagged_for_review(test_ca, ssh_key):
    def edit(raw):
        raw["cluster"]["servingCertificates"] = "self-signed"
        raw["nodes"][0]["hostnameOverride"] = True

    run = _program_run(test_ca, ssh_key, edit)
    nodes = [_node(name, config=f["kubeletConfiguration"], args=f["kubeletArgs"]) for name, f in _facts(run).items()]
    found = _stack(validate_kubelet_cis_manual, nodes)
    assert sorted(f.split(": ", 2)[:2] for f in found) == [
        ["node worker-1", "CIS 4.2.7"],
        ["node worker-1", "CIS 4.2.9"],
        ["node worker-2.example.org", "CIS 4.2.9"],
    ]


def test_the_kubelet_check_reads_flags_as_text():
    assert [f.item for f in cis_kubelet.check({}, ["--anonymous-auth=false"]) if f.item == "4.2.1"] == []


# ---------------------------------------------------------------- the whole pack over the program
def test_the_pack_passes_the_program_as_declared_and_catches_a_waived_host_key(test_ca, ssh_key):
    run = _program_run(test_ca, ssh_key, lambda raw: raw["nodes"][1]["ssh"].update(insecureIgnoreHostKey=True))
    nodes = {
        name: _node(name, f["insecureIgnoreHostKey"], f["kubeletConfiguration"], f["kubeletArgs"])
        for name, f in _facts(run).items()
    }
    resources: list[PolicyResource] = list(nodes.values())
    for r in run.of_type(REMOTE_COMMAND):
        resources.append(_resource(r.type, r.name, r.inputs, nodes[r.name.removesuffix("-install")]))
        assert _resource_check(validate_secret_commands, r.type, r.inputs, r.additional_secret_outputs) == []
    for r in run.of_type(DYNAMIC_RESOURCE):
        assert _resource_check(validate_token_expiry, r.type, r.inputs) == []
    assert _stack(validate_host_keys, resources) == []  # worker-2 waives; worker-1 pins
    assert _stack(validate_kubelet_cis, resources) == []


def test_the_pack_declares_each_policy_once():
    names = [p.name for p in policies()]
    assert names == sorted(set(names), key=names.index)
    assert {"ssh-host-key-pinned", "secret-commands-log-nothing", "bootstrap-token-expiry", "kubelet-cis-4-2"} <= set(
        names
    )
