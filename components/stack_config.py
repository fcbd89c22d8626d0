"""Reading the stack's config: from the Pulumi engine, or straight from a stack file.

Both produce the same raw mapping for `config.load_config`. The stack-file reader
needs neither the Pulumi CLI nor the passphrase: `secure:` values become
SecretPlaceholders (render and tests never need the CA key or SSH key).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from k8s_workers.config.loader import TOP_LEVEL_KEYS, SecretPlaceholder

PROJECT = "k8s-workers"
PROJECT_DIR = Path(__file__).resolve().parent.parent


def _placeholders(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return SecretPlaceholder("<secret>")
        return {k: _placeholders(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_placeholders(v) for v in value]
    return value


def raw_from_stack_file(stack: str, project_dir: Path = PROJECT_DIR) -> dict[str, Any]:
    path = project_dir / f"Pulumi.{stack}.yaml"
    document = yaml.safe_load(path.read_text()) or {}
    raw: dict[str, Any] = {}
    for key, value in (document.get("config") or {}).items():
        namespace, _, name = key.partition(":")
        if namespace == PROJECT:
            raw[name] = _placeholders(value)
    return raw


def raw_from_pulumi() -> dict[str, Any]:
    """The project's config as the engine passes it (secrets decrypted, plain values)."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    config = pulumi.Config(PROJECT)
    raw: dict[str, Any] = {}
    for key in ("cluster", "defaults", "nodes"):
        value = config.get_object(key)
        if value is not None:
            raw[key] = value
    for key in ("caKey", "sshPrivateKey", "role", "clusterStack"):
        value = config.get(key)
        if value is not None:
            raw[key] = value
    inventory = config.get("inventory")  # a path, or a list of paths (JSON to the engine)
    if inventory is not None:
        raw["inventory"] = json.loads(inventory) if inventory.lstrip()[:1] in ("[", "{") else inventory
    # Keys we do not read would be silently ignored: surface them as typos instead.
    known = {f"{PROJECT}:{k}" for k in TOP_LEVEL_KEYS}
    present = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    for key in present:
        if key.startswith(f"{PROJECT}:") and key not in known:
            raw[key.partition(":")[2]] = None
    return raw
