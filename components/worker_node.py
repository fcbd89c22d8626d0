"""One worker node: its bootstrap token, its install over SSH, and its place in the cluster.

Thin wiring only: every manifest, file and script comes from the pure modules; this
class feeds them Pulumi Outputs and keeps secrets secret.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
from pulumi_command import remote

from components.membership import NodeMembership
from components.node_registration import NodeRegistration
from components.sequencing import once_done
from k8s_workers.config.loader import Cluster, Node
from k8s_workers.decisions.rollout import service_digests, services_digest
from k8s_workers.render.node_files import NodeSecrets, kubelet_configuration, kubelet_node_args
from k8s_workers.scripts.commands import install_command, install_stdin, removal_command
from k8s_workers.scripts.install_plan import NodePlan, plan_node, review_plan

_EVERY_INPUT = ["connection", "create", "stdin", "delete", "logging", "addPreviousOutputInEnv"]


@dataclass(frozen=True)
class NodeCredentials:
    kube_proxy_cert_pem: pulumi.Output[str]  # the stack's one kube-proxy identity (KubeProxyIdentity)
    kube_proxy_key_pem: pulumi.Output[str]  # secret
    ssh_private_key: pulumi.Output[str] | None  # secret; None: the SSH agent
    kubeconfig: pulumi.Output[str] | None = None  # secret; the kubernetes provider's (None: its default)


class WorkerNode(pulumi.ComponentResource):
    name: pulumi.Output[str]
    address: pulumi.Output[str]

    def __init__(
        self,
        cluster: Cluster,
        node: Node,
        credentials: NodeCredentials,
        peers: tuple[Node, ...] = (),
        batch: int = 1,
        after: Sequence[pulumi.CustomResource] = (),  # the previous batch's registrations
        owner: str | None = None,  # the stack that declares the node (project/stack), marked in the cluster
        review: NodePlan | None = None,  # review_plan(cluster, node, peers), if the caller has it already
        opts: pulumi.ResourceOptions | None = None,
    ):
        # What the policy pack (policy/) checks on the node itself: no secrets, all known at preview.
        facts = {
            "insecureIgnoreHostKey": node.ssh.insecure_ignore_host_key,
            "kubeletConfiguration": kubelet_configuration(cluster, node),
            "kubeletArgs": [*kubelet_node_args(node), *node.kubelet_extra_args],
        }
        # Outputs only (the pack's stack policies read a component's outputs): as inputs they were a
        # second copy in state, and an 80-line kubelet configuration in every diff of the node.
        super().__init__("k8s-workers:index:WorkerNode", node.name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        prefix = node.name

        # What reviewers see: paths, modes and hashes; secrets only by version.
        reviewed = review or review_plan(cluster, node, peers)
        command = install_command(reviewed, node.ssh.user)  # known at the first preview
        # Its bootstrap token (made by the provider, kept in state as a secret) and the token's Secret,
        # created before the install and revoked by the registration once the node joined; what a change
        # restarts here, in which batch, drained first: after the previous batch is back (the program
        # waits for it; see components/sequencing.py for why not depends_on). Deleted last when the node
        # leaves, taking the Node object and its CSRs with it.
        membership = NodeMembership(
            cluster, node, credentials.kubeconfig, reviewed, once_done(after, batch), owner,
            ssh_private_key=credentials.ssh_private_key, opts=child,
        )  # fmt: skip
        # A refresh that could not ask the host said so in the membership's state: say it on every run
        # until a refresh asks again (unknown is not drift: nothing is planned for it).
        membership.hostCheck.apply(
            lambda said: pulumi.log.warn(
                f"{node.name}: its host was not checked for drift on the last refresh ({said})"
            )
            if said
            else None
        )
        token_id = membership.tokenId  # names the token's Secret: public by design
        token_secret = pulumi.Output.secret(membership.tokenSecret)
        # What runs: the same plan with the real secrets, on stdin.
        script = pulumi.Output.secret(
            pulumi.Output.all(
                token_id,
                token_secret,
                credentials.kube_proxy_cert_pem,
                credentials.kube_proxy_key_pem,
                membership.expires_at,
                membership.repairedGeneration,  # rises when a refresh found the host drifted: run again
            ).apply(
                lambda a: install_stdin(
                    plan_node(cluster, node, NodeSecrets(f"{a[0]}.{a[1]}", a[2], a[3], a[4]), peers), repair=a[5]
                )
            )
        )
        self.install = remote.Command(
            f"{prefix}-install",
            connection=remote.ConnectionArgs(
                host=node.ssh_host,
                port=node.ssh.port,
                user=node.ssh.user,
                private_key=credentials.ssh_private_key,
                host_key=None if node.ssh.insecure_ignore_host_key else node.ssh.host_key,
                dial_error_limit=node.ssh.dial_error_limit,
                per_dial_timeout=node.ssh.per_dial_timeout,
            ),
            create=command,
            stdin=script,
            delete=removal_command(reviewed, node.ssh.user),
            logging=remote.Logging.NONE,
            # Else pulumi-command exports the last stdout to the next command, warning on every
            # update and delete against an sshd without AcceptEnv.
            add_previous_output_in_env=False,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[membership],
                additional_secret_outputs=["stdout", "stderr"],
                # Old and new install manage the same files: remove before re-creating.
                delete_before_replace=True,
                # A host gone for good: nothing more over SSH, neither a change nor its removal.
                retain_on_delete=node.host_gone,
                ignore_changes=_EVERY_INPUT if node.host_gone else None,
            ),
        )

        # Serving certificates, labels and taints on the Node, the token revoked: after the install.
        self.registration = NodeRegistration(
            cluster, node, credentials.kubeconfig, services_digest(service_digests(reviewed)), owner,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.install]),
        )  # fmt: skip

        self.name = pulumi.Output.from_input(node.name)
        self.address = pulumi.Output.from_input(str(node.address))
        # Small on purpose: the engine writes every output into state after every step, and prints
        # the stack's outputs on every run (the file list per node: `make render`, docs/configuration.md file map).
        self.register_outputs({"name": self.name, "address": self.address, **facts})
