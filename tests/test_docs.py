"""The docs stay true to the code: every config key in the reference, every relative link resolvable,
every page opening with a title and a short summary, and the README a front page."""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from k8s_workers.config.loader import TOP_LEVEL_KEYS
from k8s_workers.config.models import Cluster, Node, NodeSettings

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
REFERENCE = DOCS / "configuration.md"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
README_MAX_LINES = 170

# The reference's tables name keys in their first column: `key` tables by their full path
# (`cluster.rollout.drain`, `nodes[].name`), `node setting` tables relative to a node (`ssh.hostKey`),
# since each is set under `defaults` or in a `nodes[]` entry alike.
FULL, RELATIVE = "key", "node setting"


# ------------------------------------------------------------------ the schema's keys


def _models_in(annotation: Any) -> tuple[str, type[BaseModel]] | None:
    """(path suffix, model) when a field holds a model, a list of models or a map of models."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models_in(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        found = [m for m in map(_models_in, typing.get_args(annotation)) if m is not None]
        return found[0] if found else None
    if origin is list:
        inner = _models_in(typing.get_args(annotation)[0])
        return ("[]" + inner[0], inner[1]) if inner else None
    if origin is dict:
        inner = _models_in(typing.get_args(annotation)[1])
        return (".<name>" + inner[0], inner[1]) if inner else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "", annotation
    return None


def _paths(model: type[BaseModel], prefix: str, fields: set[str] | None = None) -> tuple[set[str], set[str]]:
    """(leaf keys, container keys) of a model, by their YAML names (the camelCase aliases)."""
    leaves: set[str] = set()
    containers: set[str] = set()
    for name, field in model.model_fields.items():
        if fields is not None and name not in fields:
            continue
        path = f"{prefix}{field.alias or name}"
        nested = _models_in(field.annotation)
        if nested is None:
            leaves.add(path)
            continue
        suffix, inner = nested
        containers.add(path)
        sub_leaves, sub_containers = _paths(inner, f"{path}{suffix}.")
        leaves |= sub_leaves
        containers |= sub_containers
    return leaves, containers


def schema_keys() -> dict[str, tuple[set[str], set[str]]]:
    """Per kind of reference table: (keys it must document, keys it may name)."""
    cluster_leaves, cluster_containers = _paths(Cluster, "cluster.")
    node_only = set(Node.model_fields) - set(NodeSettings.model_fields)
    node_only_leaves, node_only_containers = _paths(Node, "nodes[].", node_only)
    setting_leaves, setting_containers = _paths(NodeSettings, "")
    top = set(TOP_LEVEL_KEYS) - {"cluster"}  # `cluster` is documented key by key
    full_required = top | cluster_leaves | node_only_leaves
    full_allowed = full_required | {"cluster"} | cluster_containers | node_only_containers
    return {
        FULL: (full_required, full_allowed),
        RELATIVE: (setting_leaves, setting_leaves | setting_containers),
    }


# ------------------------------------------------------------------ the reference's keys


def _cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


def documented_keys(text: str) -> dict[str, set[str]]:
    """The keys each kind of table names in its first column, a trailing placeholder dropped
    (`sha256.<arch>` documents the map `sha256`)."""
    found: dict[str, set[str]] = {FULL: set(), RELATIVE: set()}
    kind = None
    for line in text.splitlines():
        if not line.startswith("|"):
            kind = None
            continue
        first = _cells(line)[0]
        if kind is None:  # a table's header row
            kind = first if first in found else ""
            continue
        if kind and not re.fullmatch(r":?-+:?", first):
            for key in re.findall(r"`([^`]+)`", first):
                found[kind].add(re.sub(r"(\.<[a-z]+>)+$", "", key))
    return found


def test_every_config_key_is_in_the_reference_and_nothing_else_is():
    documented = documented_keys(REFERENCE.read_text())
    for kind, (required, allowed) in schema_keys().items():
        assert required, kind
        missing = sorted(required - documented[kind])
        assert not missing, f"keys the program accepts, missing from the `{kind}` tables of {REFERENCE.name}: {missing}"
        unknown = sorted(documented[kind] - allowed)
        assert not unknown, f"keys in the `{kind}` tables of {REFERENCE.name} the program refuses: {unknown}"


def test_the_key_check_fails_when_a_row_is_missing():
    text = REFERENCE.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| `cluster.rollout.drainTimeoutSeconds`"))
    documented = documented_keys(text.replace(row + "\n", ""))
    required, _ = schema_keys()[FULL]
    assert required - documented[FULL] == {"cluster.rollout.drainTimeoutSeconds"}


def test_the_schema_walk_sees_nested_lists_and_maps():
    (full, _), (relative, _) = schema_keys()[FULL], schema_keys()[RELATIVE]
    assert {"cluster.binaries.artifacts.<name>.url", "cluster.programRbac.deployer", "nodes[].tokenGeneration"} <= full
    assert {"taints[].effect", "ssh.hostKey", "kubelet", "evictionHard"} <= relative
    assert "nodes[].ssh.hostKey" not in full  # node settings are documented once, relative to a node


# ------------------------------------------------------------------ links


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, markup and punctuation dropped (not '-' or '_'),
    each space a '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    counts: dict[str, int] = {}
    in_code = False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        match = None if in_code else re.match(r"#{1,6} (.+)", line)
        if match:
            slug = github_slug(match.group(1))
            found.add(f"{slug}-{counts[slug]}" if slug in counts else slug)
            counts[slug] = counts.get(slug, 0) + 1
    return found


def relative_links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # code blocks hold no links
    text = re.sub(r"`[^`\n]*`", "", text)
    return [t for t in re.findall(r"\]\(([^)\s]+)\)", text) if not re.match(r"[a-z]+:", t)]


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no file {file.relative_to(ROOT) if file.is_relative_to(ROOT) else file}")
        elif anchor and (file.suffix != ".md" or anchor not in anchors(file)):
            broken.append(f"{target}: no heading #{anchor} in {file.name}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(page: Path):
    assert not broken_links(page), broken_links(page)


def test_a_broken_link_is_found(tmp_path: Path):
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other\n\n## Host drift: `pulumi refresh` sees it\n")
    page.write_text(
        "# Page\n\n## Its own (part)\n\n[ok](other.md#host-drift-pulumi-refresh-sees-it) [ok](#its-own-part)\n"
        "[no file](missing.md) [no heading](other.md#host-drift) [`code`](other.md) `[not](a-link.md)`\n"
    )
    assert [b.split(":")[0] for b in broken_links(page)] == ["missing.md", "other.md#host-drift"]


def test_github_slugs():
    assert github_slug("The program's identity in the cluster (RBAC)") == "the-programs-identity-in-the-cluster-rbac"
    assert github_slug("`cluster`: once per cluster") == "cluster-once-per-cluster"
    assert github_slug("A no-op `up` no longer walks the batches") == "a-no-op-up-no-longer-walks-the-batches"


# ------------------------------------------------------------------ page shape


@pytest.mark.parametrize("page", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_each_page_opens_with_a_title_and_a_summary_of_at_most_two_lines(page: Path):
    lines = page.read_text().splitlines()
    assert lines[0].startswith("# "), f"{page.name}: starts with `# Title`"
    assert lines[1] == "", f"{page.name}: a blank line after the title"
    summary = []
    for line in lines[2:]:
        if not line.strip():
            break
        summary.append(line)
    assert 1 <= len(summary) <= 2, f"{page.name}: the summary under the title is {len(summary)} lines"
    assert not summary[0].startswith(("#", "|", "-", "```", ">")), f"{page.name}: the summary is a paragraph"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in relative_links(ROOT / "README.md")}
    assert not [p.name for p in DOCS.glob("*.md") if p.resolve() not in linked]


def test_the_readme_is_a_front_page():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines: move detail to docs/"
