"""kube-proxy's client certificate, issued by the cluster's own CSR API: no CA key in the stack.

A Pulumi dynamic resource over `k8s_workers.cluster_api.issue_kube_proxy_certificate` (its checks
in `k8s_workers/decisions/client_csr.py`). Created: a CertificateSigningRequest for the stack's
kube-proxy key, approved by this program (its own request only) and signed by the
controller-manager. Its diff plans an update when the request or the validity changes, and from
`earlyRenewalHours` before the certificate expires: a renewal, which every node gets as a
kube-proxy-only change. Deleted: nothing to do (a certificate cannot be revoked; it expires).
"""

from __future__ import annotations

import time
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider, UpdateResult

from components.detailed_diff import changed_paths, detailed

_INPUTS = ("requestPem", "validityHours")


def _issue(props: dict[str, Any]) -> dict[str, Any]:
    from k8s_workers.cluster_api import api_client, issue_kube_proxy_certificate
    from k8s_workers.decisions.client_csr import not_after

    api = api_client(props.get("kubeconfig"))
    seconds = int(props["validityHours"]) * 3600  # the engine hands numbers over as floats; the API wants an integer
    pem = issue_kube_proxy_certificate(api, props["requestPem"], seconds, props.get("owner"))
    return {**props, "certPem": pem, "expiresAt": not_after(pem)}


class _Provider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_="kube-proxy-certificate", outs=_issue(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        from k8s_workers.decisions.client_csr import renewal_due

        paths = changed_paths(olds, news, _INPUTS)
        due = renewal_due(olds.get("expiresAt"), news["earlyRenewalHours"], time.time())
        return detailed(DiffResult(changes=bool(paths) or due, replaces=[], delete_before_replace=False), paths)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=_issue(news))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        pass


class KubeProxyCertificate(pulumi.dynamic.Resource):
    certPem: pulumi.Output[str]
    expiresAt: pulumi.Output[int]  # epoch seconds

    def __init__(
        self,
        name: str,
        request_pem: pulumi.Input[str],
        validity_hours: int,
        early_renewal_hours: int,
        kubeconfig: pulumi.Input[str] | None,  # secret; None: the default kubeconfig
        owner: str | None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        props = {
            "requestPem": request_pem,
            "validityHours": validity_hours,
            "earlyRenewalHours": early_renewal_hours,
            "kubeconfig": pulumi.Output.secret(kubeconfig) if kubeconfig is not None else None,
            "owner": owner,
            "certPem": None,
            "expiresAt": None,
        }
        super().__init__(
            _Provider(),
            name,
            props,
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["kubeconfig"])),
        )
