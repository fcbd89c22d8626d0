"""What a preview will do to the nodes, in a few lines: the top of a pull request's comment (pure).

Read from the engine's own record of the preview, not from the program: each node's
`<node>-membership` step says whether the node joins, leaves or changes, its batch, which
services' digests change (so which restart) and whether it is drained first; `<node>-registration`
alone means a label, taint or token change on the Node (no restart). Two sources give the steps:

| source | how | step |
|---|---|---|
| `pulumi preview --json` | stdout, one JSON document | `steps[]`: `op`, `urn`, `oldState.inputs`, `newState.inputs` |
| the engine's event log (`--event-log`) | one JSON event a line | `resourcePreEvent.metadata`: `op`, `urn`, `old.inputs`, `new.inputs` |
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from k8s_workers.decisions.rollout import DISRUPTIVE_SERVICES

SHOWN = 8  # node names per line; the rest are counted
BATCHES_SHOWN = 40  # batches listed with their nodes; the rest are counted
_NOT_CHANGES = ("same", "read", "refresh")


@dataclass(frozen=True)
class Step:
    op: str
    name: str  # the resource's name, from its URN
    old: Mapping[str, Any]  # inputs before
    new: Mapping[str, Any]  # inputs after


def steps_from(text: str) -> list[Step]:
    """The steps of a `pulumi preview --json` document or of an event log (JSON lines)."""
    stripped = text.strip()
    try:
        document = json.loads(stripped)  # one document: `--json`; several lines: an event log
    except ValueError:
        document = None
    if isinstance(document, dict) and "steps" in document:
        return [
            Step(
                s.get("op", ""),
                s.get("urn", "").rsplit("::", 1)[-1],
                ((s.get("oldState") or {}).get("inputs")) or {},
                ((s.get("newState") or {}).get("inputs")) or {},
            )
            for s in document["steps"] or []
        ]
    found = []
    for line in stripped.splitlines():
        meta = (json.loads(line).get("resourcePreEvent") or {}).get("metadata") if line.strip() else None
        if meta:
            old, new = meta.get("old") or {}, meta.get("new") or {}
            found.append(
                Step(meta["op"], meta["urn"].rsplit("::", 1)[-1], old.get("inputs") or {}, new.get("inputs") or {})
            )
    return found


@dataclass
class NodeChange:
    node: str
    kind: str  # "join", "leave", "restart", "cluster-side"
    restarts: tuple[str, ...] = ()
    batch: int | None = None
    drained: bool = False


@dataclass
class Summary:
    changes: list[NodeChange] = field(default_factory=list)
    other: dict[str, list[str]] = field(default_factory=dict)  # op -> resources not of a node

    def lines(self, stack: str) -> list[str]:
        if not self.changes and not self.other:
            return [f"**{stack}**: no change."]
        out = [
            f"**{stack}**: {self._headline()}",
            "",
            "| change | nodes | batches | drained first |",
            "|---|---|---|---|",
        ]
        for title, group in self._groups():
            batches = sorted({c.batch for c in group if c.batch is not None})
            drained = sum(c.drained for c in group)
            out.append(f"| {title} | {_names(c.node for c in group)} | {_batches(group, batches)} | "
                       f"{_drained(drained, len(group), group[0].kind)} |")  # fmt: skip
        for op, names in sorted(self.other.items()):
            out.append(f"| {op}: {', '.join(sorted(names)[:SHOWN])}{_more(names)} | – | – | – |")
        if order := self._order():
            out += ["", order]
        return out

    def _order(self) -> str | None:
        """Which node restarts in which batch (the per-node diff shows what, not when), when there is
        more than one batch."""
        batches: dict[int, list[str]] = {}
        for change in self.changes:
            if change.kind == "restart" and change.batch is not None:
                batches.setdefault(int(change.batch), []).append(change.node)
        if len(batches) < 2:
            return None
        listed = sorted(batches.items())
        parts = [f"{number}: {', '.join(sorted(names)[:SHOWN])}{_more(names)}" for number, names in listed]
        more = len(parts) - BATCHES_SHOWN
        return "Batches, in order: " + " · ".join(parts[:BATCHES_SHOWN]) + (f" · and {more} more" if more > 0 else "")

    def _headline(self) -> str:
        counts: dict[str, int] = {}
        for change in self.changes:
            counts[change.kind] = counts.get(change.kind, 0) + 1
        words = {
            "join": "join",
            "leave": "leave",
            "restart": "restart a service",
            "cluster-side": "change in the cluster only",
        }
        parts = [f"{n} node{'s' if n != 1 else ''} {words[k]}" for k, n in sorted(counts.items())]
        return "; ".join(parts) + "." if parts else "no node changes."

    def _groups(self) -> list[tuple[str, list[NodeChange]]]:
        groups: dict[str, list[NodeChange]] = {}
        for change in sorted(self.changes, key=lambda c: (c.batch or 0, c.node)):
            if change.kind == "restart":
                title = " + ".join(change.restarts) + " restart"
            else:
                title = {
                    "join": "join",
                    "leave": "leave (drained, removed)",
                    "cluster-side": "labels, taints or token (no restart)",
                }[change.kind]
            groups.setdefault(title, []).append(change)
        return sorted(groups.items())


def _more(names: list[str] | list[Any]) -> str:
    return f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""


def _names(names: Iterable[str]) -> str:
    listed = sorted(names)
    return f"{len(listed)}: {', '.join(listed[:SHOWN])}{_more(listed)}"


def _batches(group: list[NodeChange], batches: list[int]) -> str:
    if group[0].kind != "restart" or not batches:
        return "–"
    sizes = {sum(1 for c in group if c.batch == b) for b in batches}
    size = f"of {sizes.pop()}" if len(sizes) == 1 else "of up to " + str(max(sizes))
    return f"{len(batches)} batch{'es' if len(batches) != 1 else ''} {size} (batch {batches[0]}–{batches[-1]})"


def _drained(drained: int, total: int, kind: str) -> str:
    if kind not in ("restart", "leave"):
        return "–"
    return "yes" if drained == total else ("no" if drained == 0 else f"{drained} of {total}")


def summarize(steps: Iterable[Step]) -> Summary:
    """Per node: the kind of change, what restarts, its batch, whether it is drained first."""
    summary = Summary()
    memberships: dict[str, Step] = {}
    registrations: set[str] = set()
    for step in steps:
        if step.op in _NOT_CHANGES:
            continue
        if step.name.endswith("-membership"):
            memberships[step.name.removesuffix("-membership")] = step
        elif step.name.endswith("-registration"):
            registrations.add(step.name.removesuffix("-registration"))
        elif not step.name.endswith("-install") and step.name != "default" and not step.name.startswith("default_"):
            summary.other.setdefault(step.op, []).append(step.name)
    for node, step in memberships.items():
        if step.op in ("create", "create-replacement"):
            summary.changes.append(NodeChange(node, "join", batch=step.new.get("batch")))
        elif step.op in ("delete", "delete-replaced"):
            summary.changes.append(NodeChange(node, "leave", drained=bool(step.old.get("drain"))))
        else:
            old, new = step.old.get("services") or {}, step.new.get("services") or {}
            restarts = tuple(s for s in sorted(set(old) | set(new)) if old.get(s) != new.get(s))
            disruptive = any(s in DISRUPTIVE_SERVICES for s in restarts)
            kind = "restart" if restarts else "cluster-side"
            drained = bool(step.new.get("drain")) and disruptive
            summary.changes.append(NodeChange(node, kind, restarts, step.new.get("batch"), drained))
    for node in registrations - set(memberships):
        summary.changes.append(NodeChange(node, "cluster-side"))
    return summary


COMMENT_LIMIT = 65_536  # characters GitHub keeps of an issue or pull-request comment


_STEP = re.compile(r"^(\s*(?:[-+~<>]+\s*)?)\S+: (\([\w-]+\))$")  # `    ~ command:remote:Command: (update)`
_STEP_DETAIL = re.compile(r"^\s*\[(id|urn|provider)=(.*)\]$")  # what `--diff` prints under each step


def condensed(diff: str) -> str:
    """The preview's text as a comment shows it: each resource's header (its type, then its id, URN
    and provider, 3-4 lines) as one line named by the resource (`~ lab-1-membership: (update)`);
    every other line as the CLI printed it."""
    lines = diff.splitlines()
    out: list[str] = []
    index = 0
    while index < len(lines):
        step = _STEP.match(lines[index])
        details: dict[str, str] = {}
        following = index + 1
        while step and following < len(lines) and (detail := _STEP_DETAIL.match(lines[following])):
            details[detail.group(1)] = detail.group(2)
            following += 1
        if step and "urn" in details:
            out.append(f"{step.group(1)}{details['urn'].rsplit('::', 1)[-1]}: {step.group(2)}")
            index = following
        else:
            out.append(lines[index])
            index += 1
    return "\n".join(out) + ("\n" if diff.endswith("\n") else "")


def comment(stack: str, summary: list[str], diff: str, artifact: str, limit: int = COMMENT_LIMIT) -> str:
    """A pull-request comment: the summary first, then the preview's own text (`condensed`) folded
    below it, cut (whole lines, said so) to stay under GitHub's limit; the whole text is the run's
    `artifact`."""
    head = [f"<!-- k8s-workers preview: {stack} -->", *summary, ""]
    lines = condensed(diff).rstrip("\n").splitlines()
    opening = f"<details><summary>pulumi preview --diff ({len(lines)} lines)</summary>\n\n```diff"
    closing = "```\n</details>"
    cut_note = (
        "\n\nCut at {shown} of {total} lines to fit a comment: the whole preview is the run's artifact `{artifact}`."
    )
    budget = limit - len("\n".join(head)) - len(opening) - len(closing) - len(cut_note) - 64
    kept, size = [], 0
    for line in lines:
        if size + len(line) + 1 > budget:
            break
        kept.append(line)
        size += len(line) + 1
    body = "\n".join([*head, opening, *kept, closing])
    if len(kept) < len(lines):
        body += cut_note.format(shown=len(kept), total=len(lines), artifact=artifact)
    return body
