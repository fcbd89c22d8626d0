"""The dynamic providers as the engine meets them: serialized into state by the SDK, loaded by
the dynamic provider host (`python -m pulumi.dynamic`, started in the project directory) in a
process of its own, and asked there. The cluster calls themselves are covered in the lab suite."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime import proto, rpc
from pulumi.runtime.proto import provider_pb2_grpc

from components import membership, node_registration

PROJECT = Path(__file__).resolve().parents[1]

_LOAD_AND_ASK = """
import base64, json, sys
import dill
provider = dill.loads(base64.b64decode(sys.argv[1]))
olds, news = json.loads(sys.argv[2]), json.loads(sys.argv[3])
result = provider.diff("id", olds, news)
print(json.dumps({"type": type(provider).__module__ + "." + type(provider).__name__,
                  "changes": result.changes, "replaces": result.replaces}))
"""


def _ask_in_a_fresh_host(serialized: str, olds: dict, news: dict) -> dict:
    run = subprocess.run(
        [sys.executable, "-c", _LOAD_AND_ASK, serialized, json.dumps(olds), json.dumps(news)],
        cwd=PROJECT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


TOKEN = {
    "node": "n1",
    "tokenGeneration": 1,
    "tokenId": "abc123",
    "tokenSecret": "0123456789abcdef",
    "ttlHours": 24,
    "kubeconfig": None,
    "batch": 1,
    "services": {"kubelet": "a"},
    "drain": True,
    "drainOptions": {},
    "repairedGeneration": 0,
}
REGISTRATION = {
    "node": "n1",
    "inventory": [{"name": "n1", "addresses": ["192.0.2.11"]}],
    "approveServing": True,
    "labels": {"pool": "a"},
    "taints": [],
    "tokenGeneration": 1,
    "kubeconfig": "not a kubeconfig: the drift check fails and plans nothing",
}


@pytest.mark.parametrize(
    ("provider", "olds", "news", "expected"),
    [
        (membership._Provider(), TOKEN, TOKEN, {"changes": False, "replaces": []}),
        (membership._Provider(), TOKEN, {**TOKEN, "tokenGeneration": 2}, {"changes": True, "replaces": []}),
        (membership._Provider(), TOKEN, {**TOKEN, "batch": 4}, {"changes": False, "replaces": []}),
        (
            membership._Provider(),
            {k: v for k, v in TOKEN.items() if k != "repairedGeneration"},
            TOKEN,
            {"changes": True, "replaces": []},
        ),
        (
            membership._Provider(),
            TOKEN,
            {**TOKEN, "services": {"kubelet": "b"}},
            {"changes": True, "replaces": []},
        ),
        (node_registration._Provider(), REGISTRATION, REGISTRATION, {"changes": False, "replaces": []}),
        (
            node_registration._Provider(),
            REGISTRATION,
            {**REGISTRATION, "labels": {}},
            {"changes": True, "replaces": []},
        ),
    ],
    ids=[
        "token-same",
        "token-new",
        "batch-alone",
        "state-before-drift-checks",
        "kubelet-restart",
        "registration-no-cluster",
        "registration-label-removed",
    ],
)
def test_a_provider_kept_in_state_loads_and_decides_in_a_fresh_process(provider, olds, news, expected):
    serialized = serialize_provider(provider)
    # By reference (module and class name), not by value: small, and carrying no captured value.
    assert len(serialized) < 400, len(serialized)
    answer = _ask_in_a_fresh_host(serialized, olds, news)
    assert answer == {"type": f"{type(provider).__module__}._Provider", **expected}
    assert serialize_provider(provider) == serialized  # deterministic: no spurious diff of `__provider`


@pytest.fixture(scope="module")
def provider_host():
    """The SDK's dynamic provider host, as the engine starts it: it prints its port, then serves gRPC."""
    host = subprocess.Popen(
        [sys.executable, "-m", "pulumi.dynamic"], cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        port = int(host.stdout.readline())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield provider_pb2_grpc.ResourceProviderStub(channel)
    finally:
        host.kill()
        host.wait()


def _diff(stub, provider, olds: dict, news: dict):
    serialized = serialize_provider(provider)
    as_struct = lambda props: asyncio.run(rpc.serialize_properties({**props, "__provider": serialized}, {}))  # noqa: E731
    request = proto.DiffRequest(id="id", urn="urn:pulumi:s::p::t::n1", olds=as_struct(olds), news=as_struct(news))
    return stub.Diff(request, timeout=60)


def test_a_kubelet_change_is_answered_with_a_detailed_diff_of_the_service_alone(provider_host):
    """What the CLI prints for an update (components/detailed_diff.py): only these paths, not every input."""
    answer = _diff(provider_host, membership._Provider(), TOKEN, {**TOKEN, "services": {"kubelet": "b"}})
    assert answer.changes == proto.DiffResponse.DIFF_SOME
    assert answer.hasDetailedDiff
    assert {path: (d.kind, d.inputDiff) for path, d in answer.detailedDiff.items()} == {
        "services.kubelet": (proto.PropertyDiff.UPDATE, True)
    }
    assert list(answer.diffs) == ["services"]


def test_a_label_added_and_one_removed_are_detailed_as_such(provider_host):
    olds = {**REGISTRATION, "labels": {"pool": "a"}}
    answer = _diff(provider_host, node_registration._Provider(), olds, {**REGISTRATION, "labels": {"zone": "z"}})
    assert answer.hasDetailedDiff
    assert {path: d.kind for path, d in answer.detailedDiff.items()} == {
        "labels.pool": proto.PropertyDiff.DELETE,
        "labels.zone": proto.PropertyDiff.ADD,
    }


def test_no_change_and_a_change_the_cluster_made_keep_the_sdks_own_answer(provider_host):
    same = _diff(provider_host, membership._Provider(), TOKEN, TOKEN)
    assert same.changes == proto.DiffResponse.DIFF_NONE and not same.hasDetailedDiff
    # After a detailed answer on the same host, an answer without paths is not detailed with stale ones.
    _diff(provider_host, membership._Provider(), TOKEN, {**TOKEN, "services": {"kubelet": "c"}})
    again = _diff(provider_host, membership._Provider(), TOKEN, {**TOKEN, "batch": 9})
    assert again.changes == proto.DiffResponse.DIFF_NONE and not again.hasDetailedDiff and not again.detailedDiff


def test_a_changed_setting_is_shown_by_its_name_instead_of_its_services_digest(provider_host):
    """`kubelet.maxPods` (an input of its own) says what changes and that the kubelet restarts: the kubelet's
    digest is not shown too; a digest no setting explains (a binary, a template) still is."""
    olds = {**TOKEN, "services": {"kubelet": "a", "kube-proxy": "p"}, "kubelet.maxPods": 110, "kubelet.podPidsLimit": 1}
    news = {**olds, "services": {"kubelet": "b", "kube-proxy": "q"}, "kubelet.maxPods": 77}
    answer = _diff(provider_host, membership._Provider(), olds, news)
    assert answer.changes == proto.DiffResponse.DIFF_SOME
    assert {path: d.kind for path, d in answer.detailedDiff.items()} == {
        '["kubelet.maxPods"]': proto.PropertyDiff.UPDATE,
        "services.kube-proxy": proto.PropertyDiff.UPDATE,
    }
    assert sorted(answer.diffs) == ["kubelet.maxPods", "services"]


def test_a_registration_following_the_services_shows_that_one_line(provider_host):
    """The membership shows what restarts; the registration (which uncordons after it) its services' digest."""
    olds = {**REGISTRATION, "services": "a"}
    answer = _diff(provider_host, node_registration._Provider(), olds, {**olds, "services": "b"})
    assert answer.changes == proto.DiffResponse.DIFF_SOME
    assert {path: d.kind for path, d in answer.detailedDiff.items()} == {"services": proto.PropertyDiff.UPDATE}
