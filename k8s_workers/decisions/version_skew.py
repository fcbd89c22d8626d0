"""Whether a Kubernetes version may go on the nodes, given the apiserver and what runs now (pure).

The version-skew policy: a kubelet (and kube-proxy) must not be newer than the apiserver and may
be at most three minor versions older. A downgrade (a node running a newer kubelet than
declared) is refused unless explicitly allowed: kubelets do not promise to read state a newer
one wrote.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

MAX_MINOR_SKEW = 3


def parse(version: str) -> tuple[int, int, int]:
    match = re.match(r"^v?(\d+)\.(\d+)\.(\d+)", version)
    if not match:
        raise ValueError(f"not a Kubernetes version: {version!r}")
    major, minor, patch = (int(g) for g in match.groups())
    return major, minor, patch


def skew_problems(
    declared: str, apiserver: str, running: Mapping[str, str], allow_downgrade: bool = False
) -> list[str]:
    """Sentences saying why `declared` may not go on the nodes; `running` is node -> its kubelet's version."""
    want, api = parse(declared), parse(apiserver)
    problems = []
    if want[:2] > api[:2]:
        problems.append(
            f"{declared} is newer than the apiserver ({apiserver}): kubelets must not be newer than the "
            "apiserver; upgrade the control plane first"
        )
    elif api[0] == want[0] and api[1] - want[1] > MAX_MINOR_SKEW:
        problems.append(
            f"{declared} is more than {MAX_MINOR_SKEW} minor versions older than the apiserver ({apiserver})"
        )
    if not allow_downgrade:
        for node, version in sorted(running.items()):
            if parse(version) > want:
                problems.append(
                    f"node {node} runs kubelet {version}, newer than {declared}: a downgrade "
                    "(set cluster.rollout.allowDowngrade: true to do it anyway)"
                )
    return problems
