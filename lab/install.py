"""Install or remove many lab hosts at once, as `pulumi up` would: one SSH session per node,
in parallel, a failure on one host never stopping the others."""

from __future__ import annotations

import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from components import membership, node_disruption, node_registration
from k8s_workers.config.loader import StackConfig
from k8s_workers.decisions.rollout import batches, service_digests, services_digest
from k8s_workers.render.cluster_objects import BOOTSTRAP_TOKEN_TYPE, cluster_role_bindings, token_expires_at
from k8s_workers.render.node_files import NodeSecrets
from k8s_workers.scripts.commands import install_command, install_stdin, removal_command
from k8s_workers.scripts.install_plan import NodePlan, plan_node, review_plan
from lab import cluster, remote
from lab.hosts import LabHost
from lab.paths import ADMIN_KUBECONFIG, CREDENTIALS, LAB_CA_CERT, LAB_CA_KEY, LAB_KEY
from lab.pki import client_certificate, write_private


@dataclass(frozen=True)
class NodeJob:
    host: LabHost
    plan: NodePlan
    command: str
    stdin: str


def _token_file(node: str) -> Path:
    return CREDENTIALS / f"{node}.token"


def remember_token(node: str, token_id: str, token_secret: str) -> None:
    """What the engine keeps in state: the token the node's NodeMembership made, and when."""
    write_private(_token_file(node), f"{token_id}.{token_secret} {int(time.time())}\n")


def forget_tokens() -> None:
    """The cluster is gone (`lab down`): so is every token its memberships made, as with a new stack."""
    for path in CREDENTIALS.glob("*.token"):
        path.unlink()


def lab_token(node: str) -> tuple[str, int]:
    """The node's bootstrap token and its issue time, kept in the lab cache (0600), as the program
    keeps them in state; made here only for a node whose membership the lab never created."""
    path = _token_file(node)
    if not path.exists():
        remember_token(node, *membership.new_token())
    token, issued_at = path.read_text().split()
    return token, int(issued_at)


def lab_secrets(node: str, ttl_hours: int = 24) -> NodeSecrets:
    """A node's token and a real kube-proxy certificate signed by the lab CA (what the program's
    tls resources make), kept in the lab cache so re-runs place the same bytes."""
    cert_path, key_path = CREDENTIALS / f"{node}-kube-proxy.crt", CREDENTIALS / f"{node}-kube-proxy.key"
    if not (cert_path.exists() and key_path.exists()):
        _sign_kube_proxy(cert_path, key_path)
    token, issued_at = lab_token(node)
    return NodeSecrets(
        bootstrap_token=token,
        kube_proxy_cert_pem=cert_path.read_text(),
        kube_proxy_key_pem=key_path.read_text(),
        token_expires_at=token_expires_at(issued_at, ttl_hours),
    )


def _sign_kube_proxy(cert_path: Path, key_path: Path) -> None:
    cert_pem, key_pem = client_certificate(LAB_CA_CERT.read_text(), LAB_CA_KEY.read_text(), "system:kube-proxy", 365)
    write_private(key_path, key_pem)
    cert_path.write_text(cert_pem)


def install_jobs(config: StackConfig, hosts: Iterable[LabHost]) -> list[NodeJob]:
    by_name = {h.name: h for h in hosts}
    jobs = []
    for node in config.nodes:
        if node.name not in by_name:
            continue  # a subset of hosts: only their nodes
        node_secrets = lab_secrets(node.name, config.cluster.bootstrap_token_ttl_hours)
        plan = plan_node(config.cluster, node, node_secrets, config.nodes)
        jobs.append(NodeJob(by_name[node.name], plan, install_command(plan, node.ssh.user), install_stdin(plan)))
    return jobs


def removal_jobs(config: StackConfig, hosts: Iterable[LabHost]) -> list[NodeJob]:
    return [NodeJob(j.host, j.plan, removal_command(j.plan, "root"), "") for j in install_jobs(config, hosts)]


def clean_slate(config: StackConfig, hosts: list[LabHost]) -> None:
    """What an earlier run left on the lab, gone: its installs, Nodes, bindings (which a stack creates
    and would find `already exists`), tokens and certificate requests."""
    failures = [str(r) for r in run_all(removal_jobs(config, hosts)).values() if isinstance(r, remote.HostError)]
    if failures:
        raise remote.HostError("\n".join(failures))
    cluster.delete_nodes(h.name for h in hosts)
    for binding in cluster_role_bindings(config.cluster):
        cluster.kubectl("delete", "clusterrolebinding", binding["metadata"]["name"], "--ignore-not-found")
    cluster.kubectl("delete", "secret", "-n", "kube-system", "--field-selector", f"type={BOOTSTRAP_TOKEN_TYPE}")
    cluster.kubectl("delete", "csr", "--all")


def run_all(jobs: list[NodeJob]) -> dict[str, remote.RemoteResult | remote.HostError]:
    def one(job: NodeJob) -> remote.RemoteResult | remote.HostError:
        try:
            return remote.check(job.host, job.command, job.stdin)
        except (remote.HostError, OSError) as exc:
            return exc if isinstance(exc, remote.HostError) else remote.HostError(f"{job.host.name}: {exc}")

    with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
        return dict(zip((j.host.name for j in jobs), pool.map(one, jobs), strict=True))


def issue_tokens(config: StackConfig, hosts: Iterable[LabHost]) -> None:
    """What each node's NodeMembership resource does on create (its provider, called as the engine
    would): a token made by the provider, its Secret in kube-system, valid until its node has
    joined. A node the lab already holds a token for (as state would) gets that token's Secret again."""
    names = {h.name for h in hosts}
    for node in config.nodes:
        if node.name not in names:
            continue
        if _token_file(node.name).exists():
            membership.issue(token_props(config, node.name))
        else:
            outs = membership._Provider().create(token_props(config, node.name)).outs
            remember_token(node.name, outs["tokenId"], outs["tokenSecret"])


def token_props(config: StackConfig, name: str) -> dict:
    """The membership's inputs, with the token the lab holds for the node (its state), if any."""
    node = next(n for n in config.nodes if n.name == name)
    props = membership.membership_props(
        config.cluster, node, ADMIN_KUBECONFIG.read_text(), _review_plan(config, name), 1,
        ssh_private_key=LAB_KEY.read_text(),  # the refresh's drift check logs in as the install does
    )  # fmt: skip
    if _token_file(name).exists():
        props["tokenId"], props["tokenSecret"] = lab_token(name)[0].split(".")
    return props


def _node(config: StackConfig, name: str):  # type: ignore[no-untyped-def]
    return next(n for n in config.nodes if n.name == name)


def _review_plan(config: StackConfig, name: str) -> NodePlan:
    return review_plan(config.cluster, _node(config, name), config.nodes)


def registration_props(config: StackConfig, name: str) -> dict:
    services = services_digest(service_digests(_review_plan(config, name)))
    return node_registration.registration_props(
        config.cluster, _node(config, name), ADMIN_KUBECONFIG.read_text(), services
    )


def disruption_props(config: StackConfig, name: str, batch: int) -> dict:
    return node_disruption.disruption_props(
        config.cluster, _node(config, name), _review_plan(config, name), batch, ADMIN_KUBECONFIG.read_text()
    )


def register_all(config: StackConfig, hosts: Iterable[LabHost]) -> dict[str, dict | Exception]:
    """What each node's NodeRegistration does after its install, in parallel as the engine would:
    serving certificates, labels and taints on the Node, the token revoked."""
    names = [h.name for h in hosts if any(n.name == h.name for n in config.nodes)]

    def one(name: str) -> dict | Exception:
        try:
            return node_registration.register(registration_props(config, name))
        except Exception as exc:  # reported per node, as the engine does
            return exc

    with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        return dict(zip(names, pool.map(one, names), strict=True))


@dataclass
class Rollout:
    """What a rolling change did, batch by batch (names in order), and where it stopped."""

    batches: list[list[str]]
    drained: dict[str, bool]
    failed: dict[str, str]  # node -> why (the rollout stops after its batch)
    steps: list[tuple[str, str]] = field(default_factory=list)  # (time, what happened), for diagnoses


def roll_out(old: StackConfig, new: StackConfig, hosts: list[LabHost]) -> Rollout:
    """A change to nodes already joined, in the order the program's dependencies give the engine:
    batch by batch; in a batch, in parallel, each node's NodeMembership update (cordon and drain
    when the change restarts the kubelet or runtime: node_disruption.prepare), its install (Ready on return), its
    NodeRegistration update (uncordon). A failure stops the rollout after its batch."""
    by_name = {h.name: h for h in hosts}
    names = [n.name for n in new.nodes if n.name in by_name]
    plan = batches(names, new.cluster.rollout.max_unavailable)
    report = Rollout(plan, {}, {})

    def one(name: str, batch: int) -> tuple[str, bool]:
        olds = disruption_props(old, name, batch)
        prepared = node_disruption.prepare(olds, disruption_props(new, name, batch))
        report.steps.append((time.strftime("%H:%M:%S"), f"{name} drained" if prepared["drained"] else f"{name} kept"))
        job = next(j for j in install_jobs(new, [by_name[name]]))
        remote.check(job.host, job.command, job.stdin)
        report.steps.append((time.strftime("%H:%M:%S"), f"{name} installed, Ready"))
        node_registration.register(registration_props(new, name))
        report.steps.append((time.strftime("%H:%M:%S"), f"{name} registered"))
        return name, prepared["drained"]

    for number, batch in enumerate(plan, start=1):
        with ThreadPoolExecutor(max_workers=len(batch)) as pool:
            futures = {name: pool.submit(one, name, number) for name in batch}
        for name, future in futures.items():
            try:
                report.drained[name] = future.result()[1]
            except Exception as exc:  # named, and the next batch never starts
                report.failed[name] = str(exc)
        if report.failed:
            break
    return report


def remove_node(config: StackConfig, name: str, host: LabHost | None) -> remote.RemoteResult | None:
    """A node deleted from the config, in the engine's delete order: its NodeRegistration (cordon,
    drain), its install's removal script (skipped when the host is gone: None), its NodeMembership
    (Node, CSRs and token out of the cluster)."""
    node_registration.retire(registration_props(config, name))
    result = None
    if host is not None and not _node(config, name).host_gone:
        job = removal_jobs(config, [host])[0]
        result = remote.check(job.host, job.command, job.stdin)
    membership.leave(token_props(config, name))
    return result
