"""k8s-workers: make every host in the stack's config a worker node of an existing cluster."""

import pulumi

from components.cluster_bootstrap import ClusterBootstrap
from components.credentials import node_credentials
from components.stack_config import raw_from_pulumi
from components.worker_node import WorkerNode
from k8s_workers.config.loader import ConfigError, load_config

try:
    config = load_config(raw_from_pulumi())
except ConfigError as error:
    raise pulumi.RunError(str(error)) from None  # every problem at once, no traceback

for warning in config.warnings:
    pulumi.log.warn(warning)

cluster_bootstrap = ClusterBootstrap("cluster", config.cluster)
workers = {
    node.name: WorkerNode(
        config.cluster,
        node,
        node_credentials(config, node),
        peers=config.nodes,
        # The bindings themselves, not the component: `pulumi up --target` of one node then works.
        opts=pulumi.ResourceOptions(depends_on=cluster_bootstrap.bindings),
    )
    for node in config.nodes
}

pulumi.export(
    "nodes",
    {
        name: {
            "name": worker.name,
            "address": worker.address,
            "bootstrapTokenId": worker.bootstrap_token_id,
            "files": worker.files,
        }
        for name, worker in workers.items()
    },
)
