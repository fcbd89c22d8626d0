"""Run one `pulumi` command over a fleet of stacks: wave by wave, a bounded number at once, a
progress line per stack, each stack's whole output in a log file (order: decisions/fleet_waves.py)."""

from __future__ import annotations

import concurrent.futures
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from k8s_workers.decisions.fleet_waves import Command

# What each command needs to run unattended (a person approved the change by starting the run).
_UNATTENDED: dict[str, tuple[str, ...]] = {
    "preview": ("--diff",),
    "up": ("--yes", "--skip-preview"),
    "refresh": ("--yes", "--skip-preview"),
    "destroy": ("--yes", "--skip-preview"),
}


@dataclass(frozen=True)
class StackRun:
    stack: str
    returncode: int | None  # None: not run (an earlier wave failed)
    seconds: float = 0.0
    log: Path | None = None
    last_line: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def _last_line(text: str) -> str:
    """What a person wants from the run in one line: its last error, else its resource summary
    (`+ 1001 to create`, `5 unchanged`), else its last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.lower().startswith("error:")]
    if errors:
        return errors[-1][:300]
    raw = text.splitlines()
    if "Resources:" in (line.strip() for line in raw):
        start = [line.strip() for line in raw].index("Resources:") + 1
        summary = []
        for line in raw[start:]:
            if not line.strip():
                break
            summary.append(line.strip())
        return ", ".join(summary)[:300]
    return (lines or [""])[-1][:300]


def run_stack(command: Command, stack: str, extra: Sequence[str], cwd: Path, logs: Path) -> StackRun:
    started = time.monotonic()
    argv = ["pulumi", command, "--stack", stack, "--non-interactive", *_UNATTENDED[command], *extra]
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    log = logs / f"{stack}.log"
    log.write_text(f"$ {' '.join(argv)}\nexit {done.returncode}\n{done.stdout}{done.stderr}")
    return StackRun(stack, done.returncode, time.monotonic() - started, log, _last_line(done.stdout + done.stderr))


def run_fleet(
    command: Command,
    waves: list[list[str]],
    parallel: int,
    extra: Sequence[str],
    cwd: Path,
    logs: Path,
    say: Callable[[str], None] = print,
) -> list[StackRun]:
    """Every wave's stacks, `parallel` at once; a wave with a failure ends the run (later ones: not run)."""
    logs.mkdir(parents=True, exist_ok=True)
    runs: list[StackRun] = []
    for number, wave in enumerate(waves, start=1):
        if any(not r.ok for r in runs):
            runs += [StackRun(stack, None) for stack in wave]
            for stack in wave:
                say(f"{stack}: not run (an earlier wave failed)")
            continue
        say(f"wave {number}/{len(waves)}: {command} {', '.join(wave)}")
        with concurrent.futures.ThreadPoolExecutor(max_workers=parallel) as pool:
            futures = {pool.submit(run_stack, command, stack, extra, cwd, logs): stack for stack in wave}
            for future in concurrent.futures.as_completed(futures):
                result = future.result()
                runs.append(result)
                verdict = "ok" if result.ok else f"FAILED (exit {result.returncode})"
                say(f"{result.stack}: {command} {verdict} in {result.seconds:.0f} s; {result.last_line} [{result.log}]")
    return runs
