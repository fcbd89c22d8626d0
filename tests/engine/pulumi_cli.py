"""The real Pulumi CLI for the engine tests: whether it is here, and running it on a copy of the
project with a local file backend in a temporary directory (nothing touches the repository's stack
files: `pulumi stack init` rewrites them)."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ("command", "kubernetes", "tls")
PASSPHRASE = "k8s-workers-engine-tests"  # protects only the temporary backend's test stack
REMOTE_COMMAND = "command:remote:Command"
WORKER_NODE = "k8s-workers:index:WorkerNode"
DYNAMIC = "pulumi-python:dynamic:Resource"
# What must never appear in clear: a bootstrap token (id.secret), a private key, a kubeconfig credential.
LEAKS = re.compile(r"\b[a-z0-9]{6}\.[a-z0-9]{16}\b|PRIVATE KEY-----|client-key-data|\btoken: [^\s<]")


def pinned_plugins() -> dict[str, str]:
    text = (ROOT / "requirements.txt").read_text()
    return {name: re.search(rf"^pulumi-{name}==(\S+)$", text, re.M).group(1) for name in PLUGINS}  # type: ignore[union-attr]


def missing() -> str | None:
    """Why the engine tests cannot run here, or None."""
    need = ", ".join(f"{n} {v}" for n, v in pinned_plugins().items())
    what = (
        f"they need the `pulumi` CLI and the resource plugins {need} on PATH "
        "(`.ci/run` installs them from ../shared/engine when it is there)"
    )
    if shutil.which("pulumi") is None:
        return f"no `pulumi` CLI on PATH; {what}"
    listed = subprocess.run(["pulumi", "plugin", "ls", "--json"], capture_output=True, text=True, timeout=60)
    installed = {
        (p.get("name"), p.get("version")) for p in json.loads(listed.stdout or "[]") if p.get("kind") == "resource"
    }
    lacking = [f"{n} {v}" for n, v in pinned_plugins().items() if (n, v) not in installed]
    if lacking:
        return f"provider plugins missing: {', '.join(lacking)}; {what}"
    return None


def no_leak(text: str, what: str) -> None:
    found = LEAKS.search(text)
    assert found is None, (
        f"{what} holds a secret in clear near: {text[max(0, found.start() - 80) : found.end() + 20]!r}"
    )


@dataclass
class Result:
    args: tuple[str, ...]
    returncode: int
    output: str  # stdout and stderr: what a person running the command sees
    events: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def ops(self, type_: str | None = None) -> list[tuple[str, str]]:
        """(op, urn) of every step the engine took or planned, optionally of one resource type."""
        steps = []
        for event in self.events:
            meta = (event.get("resourcePreEvent") or {}).get("metadata")
            if meta and (type_ is None or meta.get("type") == type_):
                steps.append((meta["op"], meta["urn"]))
        return steps

    def changed(self, type_: str | None = None) -> dict[str, str]:
        """resource name -> op, for every step that is not `same` (or a read: a refresh, a StackReference)."""
        return {urn.rsplit("::", 1)[1]: op for op, urn in self.ops(type_) if op not in ("same", "refresh", "read")}

    def changes(self) -> dict[str, int]:
        for event in self.events:
            if "summaryEvent" in event:
                return event["summaryEvent"].get("resourceChanges") or {}
        return {}

    def diffs(self) -> dict[str, list[str]]:
        """resource name -> the input paths that change (`services.kubelet`), from the step's old and
        new inputs (dynamic providers give the engine no detailed diff of their own)."""
        found: dict[str, list[str]] = {}
        for event in self.events:
            meta = (event.get("resourcePreEvent") or {}).get("metadata")
            if meta and meta.get("op") not in ("same", "refresh"):
                old = (meta.get("old") or {}).get("inputs") or {}
                new = (meta.get("new") or {}).get("inputs") or {}
                found[meta["urn"].rsplit("::", 1)[1]] = _changed_paths(old, new)
        return found

    def engine_seconds(self) -> float | None:
        for event in self.events:
            if "summaryEvent" in event:
                return event["summaryEvent"].get("durationSeconds")
        return None


def _descendants(root: int) -> list[int]:
    """Every process below `root` (children, their children, ...), from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def _changed_paths(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        paths = []
        for key in sorted(set(old) | set(new)):
            paths += _changed_paths(old.get(key), new.get(key), f"{prefix}{key}.")
        return paths
    return [] if old == new else [prefix.rstrip(".")]


class Project:
    """A copy of the project (sharing the repository's venv) with one stack on a file backend.
    Every command's output is kept (`outputs`) for the plaintext scan."""

    def __init__(self, workdir: Path, stack: str, stack_file: Path | None, kubeconfig: str | None):
        self.dir = workdir / "project"
        self.stack = stack
        ignore = shutil.ignore_patterns("venv", ".git", "__pycache__", ".pytest_cache", ".ruff_cache", "Pulumi.*.yaml")
        shutil.copytree(ROOT, self.dir, ignore=ignore)
        (self.dir / "venv").symlink_to(ROOT / "venv")
        if stack_file is not None:
            shutil.copy(stack_file, self.stack_file)
        (workdir / "state").mkdir()
        self.env = {
            **os.environ,
            "PULUMI_BACKEND_URL": f"file://{workdir / 'state'}",
            "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            # `--event-log` (how these tests read the engine's steps) exists only with this set;
            # the Automation API sets it the same way.
            "PULUMI_DEBUG_COMMANDS": "true",
            "KUBECONFIG": kubeconfig or str(workdir / "no-cluster"),
        }
        self.events = workdir / "events"
        self.events.mkdir()
        self.runs = 0
        self.outputs: list[str] = []
        created = self.run("stack", "init", stack)
        assert created.returncode == 0, created.output

    def with_stack(self, stack: str) -> Project:
        """Another stack of the same project and backend (a fleet's), created; outputs kept together."""
        other = copy.copy(self)  # the same directory, backend, events and `outputs` list
        other.stack, other.runs = stack, 0
        created = other.run("stack", "init", stack)
        assert created.returncode == 0, created.output
        return other

    @property
    def stack_file(self) -> Path:
        return self.dir / f"Pulumi.{self.stack}.yaml"

    def command(self, *args: str) -> tuple[list[str], Path]:
        self.runs += 1
        log = self.events / f"{self.stack}-{self.runs}.jsonl"  # stacks of one project may run at once
        command = ["pulumi", *args, "--non-interactive"]
        if args[:2] != ("stack", "init"):
            command += ["--stack", self.stack]
        if args[0] in ("preview", "up", "destroy", "refresh"):
            command += ["--event-log", str(log)]  # one JSON event per line: the steps, the summary
        return command, log

    def _result(self, args: tuple[str, ...], returncode: int, output: str, log: Path, seconds: float) -> Result:
        events = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []
        self.outputs.append(output)
        log.with_suffix(".out").write_text(
            f"$ pulumi {' '.join(args)}\nexit {returncode}\n{output}"
        )  # for post-mortems
        return Result(args, returncode, output, events, seconds)

    def run(self, *args: str, stdin: str | None = None, timeout: int = 1800) -> Result:
        command, log = self.command(*args)
        started = time.monotonic()
        done = subprocess.run(
            command, cwd=self.dir, env=self.env, input=stdin, capture_output=True, text=True, timeout=timeout
        )
        return self._result(args, done.returncode, done.stdout + done.stderr, log, time.monotonic() - started)

    def killed_when(self, ready: Callable[[], bool], *args: str, timeout: float = 300) -> Result:
        """Run a command and SIGKILL it (the CLI and every process it started, as when the machine
        running it dies) once `ready()` says so; the result is what had happened by then."""
        command, log = self.command(*args)
        started = time.monotonic()
        process = subprocess.Popen(
            command, cwd=self.dir, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,  # its own process group (the plugins start groups of their own: see below)
        )  # fmt: skip
        try:
            while process.poll() is None and not ready():
                assert time.monotonic() - started < timeout, f"`pulumi {' '.join(args)}`: not ready in {timeout} s"
                time.sleep(0.2)
        finally:
            if process.poll() is None:
                # The CLI starts its plugins in process groups of their own: kill what it started too
                # (found before the kill, while they are still its children), as a dying machine would.
                doomed = _descendants(process.pid)
                os.killpg(process.pid, signal.SIGKILL)
                for pid in doomed:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        output = process.communicate(timeout=60)[0]
        return self._result(args, process.returncode, output, log, time.monotonic() - started)

    def set_secret(self, key: str, value: str) -> None:
        """On stdin, as a person would: never on a command line."""
        result = self.run("config", "set", "--secret", key, stdin=value)
        assert result.returncode == 0, result.output

    def up(self, *extra: str) -> Result:
        return self.run("up", "--yes", "--skip-preview", "--policy-pack", str(ROOT / "policy"), *extra)

    def preview(self, *extra: str) -> Result:
        return self.run("preview", "--diff", "--policy-pack", str(ROOT / "policy"), *extra)

    def export(self) -> str:
        result = self.run("stack", "export")
        assert result.returncode == 0, result.output
        return result.output

    def urn(self, type_: str, name: str) -> str:
        return f"urn:pulumi:{self.stack}::k8s-workers::{type_}::{name}"
