"""The KubeletConfiguration of each supported minor, as data, and the check of `kubelet:` overrides
against it (pure).

The schemas in kubelet_schemas/1.<minor>.json are generated from the k8s.io/kubelet Go types of
that minor by tools/kubelet_schema (a Go program built from Go modules): field names, types and
the fields their doc comments call deprecated. Nothing here is kept by hand.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

SCHEMAS = Path(__file__).resolve().parent / "kubelet_schemas"
_GO_DURATION = re.compile(r"^-?(0|(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+)$")
_QUANTITY = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[numkMGTPE]|[KMGTPE]i)?$")
_HINTS = {
    "boolean": "true or false, unquoted",
    "integer": "a whole number, unquoted",
    "number": "a number, unquoted",
    "string": "a string",
    "duration": 'a duration such as "30s", "5m" or "1h30m"',
    "quantity": 'a quantity such as "100m", "512Mi" or "1Gi"',
    "intOrString": "a number or a string",
}


@cache
def supported_minors() -> tuple[int, ...]:
    return tuple(sorted(int(p.stem.split(".")[1]) for p in SCHEMAS.glob("1.*.json")))


@cache
def schema(minor: int) -> dict[str, Any]:
    return json.loads((SCHEMAS / f"1.{minor}.json").read_text())["schema"]


@cache
def all_field_names() -> frozenset[str]:
    """Every top-level field of any supported minor (what the minor-agnostic check accepts)."""
    return frozenset(name for minor in supported_minors() for name in schema(minor)["properties"])


@cache
def flag_fields() -> dict[str, str]:
    """--flag -> the KubeletConfiguration field it sets, in any supported minor (read from each
    minor's kubelet source by the generator)."""
    out: dict[str, str] = {}
    for minor in supported_minors():
        out.update(json.loads((SCHEMAS / f"1.{minor}.json").read_text())["flags"])
    return out


def _type_ok(kind: str, value: Any) -> bool:
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    if kind == "duration":
        return isinstance(value, str) and bool(_GO_DURATION.match(value))
    if kind == "quantity":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, str) and bool(_QUANTITY.match(value))
        )
    if kind == "intOrString":
        return isinstance(value, int | str) and not isinstance(value, bool)
    return True


def _check(value: Any, spec: Mapping[str, Any], path: str, minor: int, found: list[tuple[str, str]]) -> None:
    kind = spec["type"]
    if kind == "object":
        if not isinstance(value, Mapping):
            found.append((path, f"{value!r} is not a mapping"))
            return
        properties = spec["properties"]
        for key, item in value.items():
            where = f"{path}.{key}" if path else key
            if key not in properties:
                found.append((where, _unknown(key, properties, minor, top=not path)))
            else:
                _check(item, properties[key], where, minor, found)
    elif kind == "map":
        if not isinstance(value, Mapping):
            found.append((path, f"{value!r} is not a mapping"))
            return
        for key, item in value.items():
            _check(item, spec["values"], f"{path}.{key}", minor, found)
    elif kind == "array":
        if not isinstance(value, list):
            found.append((path, f"{value!r} is not a list"))
            return
        for index, item in enumerate(value):
            _check(item, spec["items"], f"{path}[{index}]", minor, found)
    elif not _type_ok(kind, value):
        shown = f"{value!r}" if not isinstance(value, bool) else str(value).lower()
        found.append((path, f"{shown} is not {_HINTS.get(kind, kind)} (the kubelet would refuse to start)"))


def _unknown(key: str, properties: Mapping[str, Any], minor: int, top: bool) -> str:
    if top:
        elsewhere = [m for m in supported_minors() if key in schema(m)["properties"]]
        if elsewhere:
            return (
                f"is not a KubeletConfiguration field in Kubernetes 1.{minor} "
                f"(it is in 1.{', 1.'.join(str(m) for m in elsewhere)})"
            )
    near = difflib.get_close_matches(key, list(properties), n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return f"is not a KubeletConfiguration field in Kubernetes 1.{minor}{hint}"


def check_overrides(overrides: Mapping[str, Any], minor: int) -> tuple[list[tuple[str, str]], list[str]]:
    """(problems as (sub-path, why), deprecated fields used) of `kubelet:` overrides for 1.<minor>."""
    found: list[tuple[str, str]] = []
    root = schema(minor)
    _check(dict(overrides), root, "", minor, found)
    deprecated = [k for k in overrides if root["properties"].get(k, {}).get("deprecated")]
    return found, deprecated
