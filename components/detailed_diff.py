"""A detailed diff from the program's dynamic providers, so `pulumi preview --diff` prints only what changed.

The Python SDK's dynamic providers answer the engine's Diff with changed/unchanged only
(pulumi/pulumi#3080, still so in 3.272): the CLI then prints every input of an updated resource,
about 15 lines per node resource for a one-setting change. The gRPC response is built in the SDK's
provider process right after the provider's `diff` returns, on the same thread; `detailed` hands it
the changed input paths there, and the response carries them as the protocol's detailed diff
(`hasDetailedDiff`, `detailedDiff`), which the CLI prints alone.

Only updates are detailed; an answer the SDK builds differently (another version) is left as it was,
so the worst case is the full print of before. tests/test_dynamic_providers.py asks the SDK's own
provider host over gRPC to catch that.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from pulumi.dynamic import DiffResult

_pending = threading.local()  # the paths of the Diff call this thread is answering


def changed_paths(olds: Mapping[str, Any], news: Mapping[str, Any], keys: Iterable[str]) -> dict[str, str]:
    """Each changed input among `keys` -> "add", "delete" or "update"; a mapping input by its changed
    entries (`services.kubelet`), so a digest's change names the service it restarts."""
    paths: dict[str, str] = {}
    for key in keys:
        old, new = olds.get(key), news.get(key)
        if old == new:
            continue
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            for sub in sorted(set(old) | set(new)):
                if old.get(sub) != new.get(sub):
                    paths[_path(key, sub)] = _kind(sub in old, sub in new)
        else:
            paths[_path(None, key)] = _kind(old is not None, new is not None)
    return paths


def _path(key: str | None, sub: str) -> str:
    """A property path the engine reads back: a key holding a dot (`kubelet.maxPods`) is quoted."""
    if "." in sub or "[" in sub:
        return f"{key or ''}[{json.dumps(sub)}]"
    return f"{key}.{sub}" if key else sub


def top_input(path: str) -> str:
    """The input a path is in: `services` of `services.kubelet`, `kubelet.maxPods` of `["kubelet.maxPods"]`."""
    quoted = re.match(r'\["((?:[^"\\]|\\.)*)"\]', path)
    return json.loads(f'"{quoted.group(1)}"') if quoted else re.split(r"[.\[]", path, maxsplit=1)[0]


def _kind(before: bool, after: bool) -> str:
    return "update" if before and after else ("add" if after else "delete")


class _DiffResponse:
    """Stands in for the protocol's DiffResponse class in the provider process: the class itself
    for every attribute (DIFF_SOME...), and the detailed diff added to what `detailed` left."""

    def __init__(self, message: Any) -> None:
        self._message = message

    def __getattr__(self, name: str) -> Any:
        return getattr(self._message, name)

    def __call__(self, **fields: Any) -> Any:
        from pulumi.runtime import proto

        paths: dict[str, str] | None = getattr(_pending, "paths", None)
        _pending.paths = None
        if paths and fields.get("changes") == self._message.DIFF_SOME and not fields.get("replaces"):
            kinds = {
                "add": proto.PropertyDiff.ADD,
                "delete": proto.PropertyDiff.DELETE,
                "repair": proto.PropertyDiff.DELETE,
            }
            fields["hasDetailedDiff"] = True
            fields["detailedDiff"] = {
                # "repair": an output (not an input) the update clears; the CLI shows its old value.
                path: proto.PropertyDiff(kind=kinds.get(kind, proto.PropertyDiff.UPDATE), inputDiff=kind != "repair")
                for path, kind in paths.items()
            }
            fields["diffs"] = sorted({top_input(path) for path in paths})
        return self._message(**fields)


_lock = threading.Lock()


def detailed(result: DiffResult, paths: Mapping[str, str]) -> DiffResult:
    """What a provider's `diff` returns (last, so nothing runs between this and the response): its
    result, the response detailing these paths. None: the SDK's answer as it is, e.g. for a change
    the cluster made, which has no input path to show (the CLI prints every input then, as it does
    for an empty detailed diff)."""
    from pulumi.runtime import proto

    with _lock:
        if not isinstance(proto.DiffResponse, _DiffResponse):
            proto.DiffResponse = _DiffResponse(proto.DiffResponse)
    _pending.paths = dict(paths)
    return result
