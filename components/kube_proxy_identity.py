"""Once per stack: kube-proxy's client key and certificate, issued by the cluster (its CSR API,
components/kube_proxy_certificate.py), or signed here with the cluster CA's key when `caKey` is set
(for a control plane that does not sign for `kubernetes.io/kube-apiserver-client`).

One for every node, not one per node: each node's kube-proxy is the same identity anyway
(`system:kube-proxy`, the one the default `system:node-proxier` binding names), Kubernetes cannot
revoke a client certificate, and three resources per node cost the engine about 40 ms each in
every preview (docs/performance.md). The certificate is renewed before it expires (`earlyRenewalHours`):
every node then gets the new one as a kube-proxy-only change (kube-proxy restarts, no drain).
"""

from __future__ import annotations

import pulumi
import pulumi_tls as tls

from components.kube_proxy_certificate import KubeProxyCertificate
from k8s_workers.config.loader import Cluster


class KubeProxyIdentity(pulumi.ComponentResource):
    cert_pem: pulumi.Output[str]
    key_pem: pulumi.Output[str]  # secret

    def __init__(
        self,
        name: str,
        cluster: Cluster,
        ca_key_pem: pulumi.Output[str] | None,  # secret; None: the cluster issues the certificate
        kubeconfig: pulumi.Input[str] | None = None,  # secret; the cluster's (None: the default kubeconfig)
        owner: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("k8s-workers:index:KubeProxyIdentity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        key = tls.PrivateKey(f"{name}-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        request = tls.CertRequest(
            f"{name}-csr",
            private_key_pem=key.private_key_pem,
            subject=tls.CertRequestSubjectArgs(common_name="system:kube-proxy"),
            opts=child,
        )
        validity = cluster.kube_proxy_certificate
        if ca_key_pem is None:
            issued = KubeProxyCertificate(
                f"{name}-cert",
                request.cert_request_pem,
                validity.validity_hours,
                validity.early_renewal_hours,
                kubeconfig,
                owner,
                opts=child,
            )
            self.cert_pem = issued.certPem
        else:
            signed = tls.LocallySignedCert(
                f"{name}-cert",
                cert_request_pem=request.cert_request_pem,
                ca_cert_pem=cluster.ca_cert_pem,
                ca_private_key_pem=ca_key_pem,
                validity_period_hours=validity.validity_hours,
                early_renewal_hours=validity.early_renewal_hours,
                allowed_uses=["digital_signature", "key_encipherment", "client_auth"],
                opts=child,
            )
            self.cert_pem = signed.cert_pem
        self.key_pem = pulumi.Output.secret(key.private_key_pem)
        self.register_outputs({"certPem": self.cert_pem})
