"""Nodes kept in files the stack config names (`inventory`), so the stack config stays small at
any fleet size: the engine hands the whole stack config to the program in one environment string,
which Linux caps at 128 KiB (MAX_ARG_STRLEN), about 650 inline nodes.

`inventory` is a path, or a list of paths, relative to the project: a YAML file, or a directory
whose `*.yaml`/`*.yml` files (sub-directories included) are read in name order. Each file is a
mapping with one key, `nodes`, a list of node entries exactly as inline `nodes` takes them.
Inline nodes come first; every entry keeps its origin, so an error names file, entry and key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from k8s_workers.config.types import yaml_problem

SUFFIXES = (".yaml", ".yml")


@dataclass
class Inventory:
    nodes: list[Any] = field(default_factory=list)  # every node entry, inline ones first
    origins: list[str] = field(default_factory=list)  # per entry: "nodes[3]" or "inventory/a.yaml: nodes[0]"
    problems: list[tuple[str, str]] = field(default_factory=list)  # (key path, message)


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
    return [path]


def read_inventory(spec: Any, inline: Sequence[Any], base_dir: Path) -> Inventory:
    inventory = Inventory(list(inline), [f"nodes[{i}]" for i in range(len(inline))])
    paths = [spec] if isinstance(spec, str) else spec
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p for p in paths):
        inventory.problems.append(("inventory", "must be a path or a list of paths (YAML files or directories)"))
        return inventory
    for index, name in enumerate(paths):
        key = "inventory" if isinstance(spec, str) else f"inventory[{index}]"
        path = base_dir / name
        if not path.exists():
            inventory.problems.append((key, f"{name}: no such file or directory (relative to {base_dir})"))
            continue
        files = _files(path)
        if not files:
            inventory.problems.append((key, f"{name}: no {' or '.join(SUFFIXES)} file in this directory"))
        for file in files:
            shown = file.relative_to(base_dir) if file.is_relative_to(base_dir) else file
            _read_file(file, str(shown), inventory)
    return inventory


def _read_file(file: Path, shown: str, inventory: Inventory) -> None:
    try:
        document = yaml.safe_load(file.read_text())
    except yaml.YAMLError as error:
        inventory.problems.append((shown, yaml_problem(error)))
        return
    except OSError as error:
        inventory.problems.append((shown, f"cannot be read: {error.strerror}"))
        return
    if not isinstance(document, Mapping) or set(document) - {"nodes"}:
        extra = sorted(set(document) - {"nodes"}) if isinstance(document, Mapping) else None
        what = f"unknown keys {extra}" if extra else f"a {type(document).__name__}"
        inventory.problems.append((shown, f"must be a mapping with one key, nodes (a list of nodes); found {what}"))
        return
    nodes = document.get("nodes") or []
    if not isinstance(nodes, list):
        inventory.problems.append((f"{shown}: nodes", "must be a list of nodes"))
        return
    inventory.nodes += nodes
    inventory.origins += [f"{shown}: nodes[{j}]" for j in range(len(nodes))]


_NODE_REF = re.compile(r"\bnodes\[(\d+)\]")


def relabel(text: str, origins: Sequence[str]) -> str:
    """Each `nodes[i]` (of the combined list) as the entry it came from."""
    return _NODE_REF.sub(lambda m: origins[int(m.group(1))] if int(m.group(1)) < len(origins) else m.group(0), text)
