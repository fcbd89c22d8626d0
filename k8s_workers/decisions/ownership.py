"""Which stack owns a node, and whether this one may take it (pure).

Every stack of a fleet (a standalone stack, or each pool) marks what it makes for a node with
its own name, `project/stack` (OWNER_ANNOTATION): the node's bootstrap token Secrets when it
joins, the Node once it registered. Another stack that declares a node of the same name is
refused, naming the owner, rather than adopting it: two stacks would otherwise both install,
roll and remove one host. A Node without the annotation (joined before owners were recorded,
or by hand) is nobody's: the first stack that declares it takes it.
"""

from __future__ import annotations

from collections.abc import Mapping


def claims(node_owners: Mapping[str, str], token_owners: Mapping[str, set[str]]) -> dict[str, set[str]]:
    """node name -> every stack that marked it (its Node, its tokens)."""
    found: dict[str, set[str]] = {name: {owner} for name, owner in node_owners.items()}
    for name, owners in token_owners.items():
        found.setdefault(name, set()).update(owners)
    return found


def conflicts(names: list[str], owner: str, claimed: Mapping[str, set[str]]) -> dict[str, list[str]]:
    """The declared nodes another stack owns: node -> those stacks (sorted)."""
    return {n: sorted(claimed[n] - {owner}) for n in names if claimed.get(n, set()) - {owner}}


def refusal(node: str, others: list[str]) -> str:
    stacks = ", ".join(repr(o) for o in others)
    return (
        f"Node {node!r} belongs to the stack {stacks} (annotation k8s-workers/owner): a node is declared in "
        "one stack of a fleet; remove it there first (`pulumi up` without it), or rename this one"
    )


def held_by_others(claimed: Mapping[str, set[str]], owner: str) -> dict[str, list[str]]:
    """stack -> its nodes, for every stack but `owner`: what a cluster stack's destroy waits for."""
    held: dict[str, list[str]] = {}
    for node, owners in sorted(claimed.items()):
        for other in sorted(owners - {owner}):
            held.setdefault(other, []).append(node)
    return held
