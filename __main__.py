"""k8s-workers: make every host in the stack's config a worker node of an existing cluster."""

import pulumi

from components.cluster_bootstrap import ClusterBootstrap
from components.credentials import kube_proxy_identity, node_credentials
from components.preflight import check_versions
from components.stack_config import raw_from_pulumi
from components.worker_node import WorkerNode
from k8s_workers.config.loader import ConfigError, load_config
from k8s_workers.decisions.rollout import rollout_batches

try:
    config = load_config(raw_from_pulumi())
except ConfigError as error:
    raise pulumi.RunError(str(error)) from None  # every problem at once, no traceback

for warning in config.warnings:
    pulumi.log.warn(warning)

joined = check_versions(config)  # the version-skew policy, before any resource; the nodes already in the cluster

cluster_bootstrap = ClusterBootstrap("cluster", config.cluster)
kube_proxy = kube_proxy_identity(config)  # one client certificate for every node's kube-proxy
by_name = {node.name: node for node in config.nodes}
joining, rolling = rollout_batches(list(by_name), config.cluster.rollout.max_unavailable, joined)
workers: dict[str, WorkerNode] = {}


def worker(name: str, batch: int, after: list[pulumi.Resource]) -> WorkerNode:
    return WorkerNode(
        config.cluster,
        by_name[name],
        node_credentials(config, by_name[name], kube_proxy),
        peers=config.nodes,
        batch=batch,
        after=after,
        # The bindings themselves, not the component: `pulumi up --target` of one node then works.
        opts=pulumi.ResourceOptions(depends_on=cluster_bootstrap.bindings),
    )


# Nodes that are not in the cluster yet: all at once (batch 0), nothing there to disrupt.
for name in joining:
    workers[name] = worker(name, 0, [])
# Rolling changes: each batch's disruptions wait for the previous batch's registrations (Ready, uncordoned).
previous: list[pulumi.Resource] = []
for number, names in enumerate(rolling, start=1):
    for name in names:
        workers[name] = worker(name, number, previous)
    previous = [workers[name].registration for name in names]

# What a person needs at the end of a run, a few lines whatever the fleet's size: the nodes and
# their addresses (each node's files: `make render`; what changed: the run's summary).
pulumi.export("nodeCount", len(workers))
pulumi.export("nodes", {name: worker.address for name, worker in workers.items()})
