"""The one place for the lab's pins: which Go module versions make its real binaries.

These resolve on the Go module proxy (v1.37.3 of k8s.io/kubernetes does not, and v1.34.5's staging
modules partly answer 403). Changing a pin changes the build cache key, so the next `lab build`
makes new binaries and never mixes generations.
"""

from __future__ import annotations

KUBERNETES = "v1.37.2"  # the lab cluster's control plane and the nodes' default version
KUBERNETES_EXTRA = ("v1.36.4",)  # built on request (`lab build --kubernetes v1.36.4`): upgrade tests
ETCD = "v3.7.0"  # what k8s.io/kubernetes v1.37.2 pins
CONTAINERD = "v2.1.5"
RUNC = "v1.3.4"
CNI_PLUGINS = "v1.7.1"
KUBE_BENCH = "v0.15.1"  # CIS checks on the lab's nodes (tests/e2e/test_cis.py); its benchmarks ship in the module
KUBE_BENCH_BENCHMARK = "cis-1.12"  # the newest CIS Kubernetes benchmark it has (its mapping ends at 1.34)
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"  # the program's default sandbox image, built as a lab fixture
WORKLOAD_IMAGE = "registry.k8s.io/k8s-workers-lab/echo:1.1"  # a tiny HTTP server the lab tests run in pods
GINKGO = "v2.32.0"  # what k8s.io/kubernetes v1.37.2 requires: its CLI runs e2e.test in parallel
COREDNS = "v1.14.6"  # what kubeadm v1.37.2 deploys: the lab's cluster DNS for the conformance run
AGNHOST_IMAGE = "registry.k8s.io/e2e-test-images/agnhost:2.66.1"  # test/utils/image/manifest.go of v1.37.2
BUSYBOX_IMAGE = "registry.k8s.io/e2e-test-images/busybox:1.37.0-2"  # the same manifest
NONEWPRIVS_IMAGE = "registry.k8s.io/e2e-test-images/nonewprivs:1.4"  # the same manifest
GLIBC_DNS_IMAGE = "registry.k8s.io/e2e-test-images/glibc-dns-testing:2.1.1"  # the DNS tests' glibc querier
SUITE_PAUSE_IMAGE = "registry.k8s.io/pause:3.10.2"  # the pause image the suite's own pods ask for
COREDNS_IMAGE = f"registry.k8s.io/coredns/coredns:{COREDNS}"  # kubeadm's name for it
GO_MINIMUM = (1, 26)  # k8s.io/kubernetes v1.37 says `go 1.26.0`
