"""k8s-workers: make every host in the stack's config a worker node of an existing cluster.

One stack does it all (role standalone), or a fleet splits it: a cluster stack (role cluster) holds
what is once per cluster, pool stacks (role pool) hold nodes and read the cluster stack.
"""

import pulumi

from components.cluster_bootstrap import ClusterBootstrap
from components.credentials import KubeProxyCredentials, kube_proxy_identity, node_credentials
from components.fleet import ClusterStackIdentity, FleetGuard, cluster_stack_settings, export_cluster, owner
from components.preflight import check_cluster
from components.stack_config import raw_from_pulumi
from components.worker_node import WorkerNode
from k8s_workers.config.fleet import read_fleet, settings_for_pools
from k8s_workers.config.loader import ConfigError, load_config
from k8s_workers.decisions.rollout import rollout_batches, service_digests, services_digest
from k8s_workers.scripts.install_plan import review_plan

raw = raw_from_pulumi()
fleet, _ = read_fleet(raw)  # its problems are load_config's too
try:
    from_cluster_stack = cluster_stack_settings(fleet.cluster_stack) if fleet.cluster_stack else None
    config = load_config(raw, cluster_stack=from_cluster_stack)
except ConfigError as error:
    raise pulumi.RunError(str(error)) from None  # every problem at once, no traceback

for warning in config.warnings:
    pulumi.log.warn(warning)

# The version-skew policy and the nodes other stacks own, before any resource; the nodes already in
# the cluster, with the services each one's last `up` left running.
joined = check_cluster(config, owner())

kube_proxy: KubeProxyCredentials
bindings: list[pulumi.Resource] = []
if config.fleet.holds_cluster:
    bindings = list(ClusterBootstrap("cluster", config.cluster).bindings)
    identity = kube_proxy_identity(config, owner())  # one client certificate for every node's kube-proxy
    kube_proxy = identity
    if config.fleet.role == "cluster":  # what its pools read; the guard goes first on destroy, or nothing does
        export_cluster(
            settings_for_pools(raw["cluster"], config.cluster.ca_cert_pem), identity.cert_pem, identity.key_pem
        )
        kubeconfig = pulumi.Config("kubernetes").get("kubeconfig")
        FleetGuard(kubeconfig, opts=pulumi.ResourceOptions(depends_on=[*bindings, identity]))
else:
    assert config.fleet.cluster_stack is not None
    kube_proxy = ClusterStackIdentity(config.fleet.cluster_stack)

by_name = {node.name: node for node in config.nodes}
reviews = {node.name: review_plan(config.cluster, node, config.nodes) for node in config.nodes}
wanted = {name: services_digest(service_digests(review)) for name, review in reviews.items()}
rollout = rollout_batches(list(by_name), config.cluster.rollout.max_unavailable, joined, wanted)
workers: dict[str, WorkerNode] = {}


def worker(name: str, batch: int, after: list[pulumi.Resource]) -> WorkerNode:
    return WorkerNode(
        config.cluster,
        by_name[name],
        node_credentials(config, by_name[name], kube_proxy),
        peers=config.nodes,
        batch=batch,
        after=after,
        owner=owner(),
        review=reviews[name],
        # The bindings themselves, not the component: `pulumi up --target` of one node then works.
        opts=pulumi.ResourceOptions(depends_on=bindings),
    )


# Rolling changes: a batch's disruptions wait for the previous batch's registrations (Ready,
# uncordoned); a node the cluster does not have yet, or where nothing restarts, waits for nothing.
previous: list[pulumi.Resource] = []
for number, names in enumerate(rollout.batches, start=1):
    for name in names:
        workers[name] = worker(name, number, previous if name in rollout.waits else [])
    previous = [workers[name].registration for name in names]

# What a person needs at the end of a run, a few lines whatever the fleet's size: the nodes and
# their addresses (each node's files: `make render`; what changed: the run's summary).
if config.fleet.holds_nodes:
    pulumi.export("nodeCount", len(workers))
    pulumi.export("nodes", {name: worker.address for name, worker in workers.items()})
