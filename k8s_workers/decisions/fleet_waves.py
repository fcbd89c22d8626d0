"""Which stacks of a fleet run together, and in which order (pure).

`fleet.yaml` at the project's root lists the fleet (docs/fleets.md):

    cluster: prod-cluster        # the stack with role cluster
    waves:                       # pool stacks, wave by wave: a canary first, then the rest
      - [prod-canary]
      - [prod-rack-a, prod-rack-b]
    parallel: 2                  # at most this many stacks run at once

| command | order |
|---|---|
| `preview` | every stack at once (bounded by `parallel`): a preview changes nothing |
| `up`, `refresh` | the cluster stack, then each wave; a wave with a failed stack stops the run |
| `destroy` | the waves in reverse, then the cluster stack (its guard refuses while pools hold nodes) |
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

Command = Literal["preview", "up", "refresh", "destroy"]


class FleetFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cluster: str | None = None  # None: the pools join a cluster no stack here manages
    waves: list[list[str]] = Field(min_length=1)
    parallel: int = Field(2, ge=1, le=64)

    @field_validator("waves")
    @classmethod
    def _each_stack_once(cls, waves: list[list[str]]) -> list[list[str]]:
        seen: set[str] = set()
        for index, wave in enumerate(waves):
            if not wave:
                raise ValueError(f"wave {index} is empty")
            for stack in wave:
                if stack in seen:
                    raise ValueError(f"stack {stack!r} is in more than one wave")
                seen.add(stack)
        return waves


class FleetFileError(ValueError):
    pass


def read_fleet_file(path: Path) -> FleetFile:
    """The fleet file, or FleetFileError naming each bad key."""
    try:
        document = yaml.safe_load(path.read_text())
        fleet = FleetFile.model_validate(document)
    except OSError as exc:
        raise FleetFileError(f"{path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise FleetFileError(f"{path}: not YAML: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in exc.errors())
        raise FleetFileError(f"{path}: {problems}") from None
    if fleet.cluster is not None and any(fleet.cluster in wave for wave in fleet.waves):
        raise FleetFileError(f"{path}: waves: the cluster stack {fleet.cluster!r} is not a pool")
    return fleet


def waves_for(command: Command, fleet: FleetFile) -> list[list[str]]:
    """The stacks to run, wave by wave: every stack of a wave may run at once."""
    cluster = [[fleet.cluster]] if fleet.cluster else []
    if command == "preview":
        return [[stack for wave in cluster + fleet.waves for stack in wave]]
    if command == "destroy":
        return [*reversed(fleet.waves), *cluster]
    return [*cluster, *fleet.waves]
