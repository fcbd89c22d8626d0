"""Where the lab keeps things: outside the repo, so clones stay clean and caches survive."""

from __future__ import annotations

import os
from pathlib import Path

CACHE = Path(os.environ.get("K8SW_LAB_CACHE", "/var/cache/k8s-workers/lab"))
ROOTS = CACHE / "roots"  # debootstrap results, one per recipe
HOSTS = CACHE / "hosts"  # one copy per running host
MIRROR = CACHE / "mirror"  # what the artifact server serves
STATE = CACHE / "state.json"
LAB_KEY = CACHE / "id_ed25519"  # the lab's SSH key (root login on lab hosts)
LAB_CA_CERT = CACHE / "ca.crt"
LAB_CA_KEY = CACHE / "ca.key"
KNOWN_HOSTS = CACHE / "known_hosts"
CREDENTIALS = CACHE / "credentials"  # lab stand-ins for what the program's tls resources make
BUILD = Path(os.environ.get("K8SW_BUILD_CACHE", "/var/cache/k8s-workers/build"))  # binaries built from Go modules
IMAGES = CACHE / "images"  # OCI archives of the lab's pause and workload images
CONTROL_PLANE = CACHE / "control-plane"  # PKI, kubeconfigs, etcd data and logs of the lab cluster
ADMIN_KUBECONFIG = CONTROL_PLANE / "admin.conf"
# The program's own identities (rbac/program-rbac.yaml binds their groups): `up`, and previews.
DEPLOYER_KUBECONFIG = CONTROL_PLANE / "deployer.conf"
PREVIEWER_KUBECONFIG = CONTROL_PLANE / "previewer.conf"
