"""Order between batches without a declared dependency chain.

A batch's disruptions must start only once the previous batch's registrations are done. Declared
as `depends_on`, that is a chain as long as the number of batches (three resources deep per
batch), and the Python SDK checks every new dependency for cycles by walking the whole chain
behind it, recursively: measured under mocks, 1000 one-node batches overflowed Python's recursion
limit, and below that the walk grows with the square of the depth. So the program waits instead:
a batch's value is an Output that resolves once the previous batch's registrations are done
(their ids resolve when the engine has finished them), carrying no resource dependency.

Only `up` waits. A preview runs nothing, so there is nothing to order: waiting there made a preview
without a cluster (every node its own batch) a chain of one engine round trip per node, each slower
than the last as the engine's snapshot grows (the real engine, 300 nodes: 390 s).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TypeVar

import pulumi

T = TypeVar("T")


def once_done(resources: Sequence[pulumi.CustomResource], value: T) -> pulumi.Output[T]:
    """`value`, available once every resource in `resources` is done (no dependency recorded); at
    once in a preview."""
    if not resources or pulumi.runtime.is_dry_run():
        return pulumi.Output.from_input(value)

    async def wait() -> T:
        await asyncio.gather(*(r.id.future(with_unknowns=True) for r in resources))
        return value

    async def known() -> bool:
        return True

    async def not_secret() -> bool:
        return False

    return pulumi.Output(
        set(), asyncio.ensure_future(wait()), asyncio.ensure_future(known()), asyncio.ensure_future(not_secret())
    )
