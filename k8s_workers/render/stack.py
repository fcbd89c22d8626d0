"""`python -m components render`: every file each node would receive, for review.

Writes DIR/<node>/<absolute path on the host> with the declared mode, each node's manifest
(artifacts and files with their modes and sha256: what its install places) at
DIR/manifests/<node>.txt, and the cluster objects at DIR/cluster/*.yaml. Secrets are placeholders; no cluster, host or Pulumi CLI
is needed. Uses the same functions as the components, so the bytes match.
"""

from __future__ import annotations

import os
from pathlib import Path

from k8s_workers.config.loader import StackConfig
from k8s_workers.render.cluster_objects import bootstrap_token_secret, cluster_role_bindings, safe_name
from k8s_workers.render.templating import to_yaml
from k8s_workers.scripts.commands import install_manifest
from k8s_workers.scripts.install_plan import review_plan

PLACEHOLDER_TOKEN_ID = "<token-id>"
PLACEHOLDER_EXPIRATION = "<issued-at + bootstrapTokenTtlHours, RFC3339>"


def _write(path: Path, content: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    os.chmod(path, mode)


def render_stack(config: StackConfig, out: Path) -> list[Path]:
    written = []
    for node in config.nodes:
        plan = review_plan(config.cluster, node, config.nodes)
        for f in plan.files:
            target = out / node.name / f.path.lstrip("/")
            _write(target, f.content, int(f.mode, 8))
            written.append(target)
        manifest = out / "manifests" / f"{node.name}.txt"
        _write(manifest, "\n".join(install_manifest(plan)) + "\n", 0o644)
        written.append(manifest)
    objects = {safe_name(m): m for m in cluster_role_bindings(config.cluster)}
    for node in config.nodes:
        objects[f"bootstrap-token-{node.name}"] = bootstrap_token_secret(
            node.name, PLACEHOLDER_TOKEN_ID, "<token-secret>", PLACEHOLDER_EXPIRATION
        )
    for name, manifest in objects.items():
        target = out / "cluster" / f"{name}.yaml"
        _write(target, to_yaml(manifest) + "\n", 0o644)
        written.append(target)
    return written
