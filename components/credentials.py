"""Turning configured key material into Pulumi secrets: once per stack, then per node."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import pulumi

from components.kube_proxy_identity import KubeProxyIdentity
from components.worker_node import NodeCredentials
from k8s_workers.config.loader import Node, StackConfig


def kube_proxy_identity(config: StackConfig, owner: str | None = None) -> KubeProxyIdentity:
    """Issued by the cluster's CSR API, or signed here when the stack has the CA key; the preview
    says which."""
    if config.ca_key_pem is None:
        kubeconfig = pulumi.Config("kubernetes").get("kubeconfig")  # the cluster that issues it
        pulumi.log.info(
            "kube-proxy's client certificate: issued by the cluster (a CertificateSigningRequest to "
            "kubernetes.io/kube-apiserver-client); no CA key in this stack"
        )
        return KubeProxyIdentity(
            "kube-proxy",
            config.cluster,
            None,
            pulumi.Output.secret(kubeconfig) if kubeconfig is not None else None,
            owner,
        )
    pulumi.log.info("kube-proxy's client certificate: signed in this stack with its caKey")
    return KubeProxyIdentity("kube-proxy", config.cluster, pulumi.Output.secret(config.ca_key_pem))


class KubeProxyCredentials(Protocol):
    """kube-proxy's identity: this stack's KubeProxyIdentity, or a pool's from its cluster stack."""

    cert_pem: pulumi.Output[str]
    key_pem: pulumi.Output[str]  # secret


def node_credentials(config: StackConfig, node: Node, kube_proxy: KubeProxyCredentials) -> NodeCredentials:
    if node.ssh.private_key_file is not None:
        ssh_key: str | None = Path(node.ssh.private_key_file).read_text()
    else:
        ssh_key = config.ssh_private_key
    kubeconfig = pulumi.Config("kubernetes").get("kubeconfig")  # what the kubernetes provider reads
    return NodeCredentials(
        kube_proxy_cert_pem=kube_proxy.cert_pem,
        kube_proxy_key_pem=kube_proxy.key_pem,
        ssh_private_key=pulumi.Output.secret(ssh_key) if ssh_key is not None else None,
        kubeconfig=pulumi.Output.secret(kubeconfig) if kubeconfig is not None else None,
    )
