"""The real Pulumi CLI for the engine tests: whether it is here, and running it on a copy of the
project with a local file backend in a temporary directory (nothing touches the repository's stack
files: `pulumi stack init` rewrites them)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ("command", "kubernetes", "tls")
PASSPHRASE = "k8s-workers-engine-tests"  # protects only the temporary backend's test stack


def pinned_plugins() -> dict[str, str]:
    text = (ROOT / "requirements.txt").read_text()
    return {name: re.search(rf"^pulumi-{name}==(\S+)$", text, re.M).group(1) for name in PLUGINS}  # type: ignore[union-attr]


def missing() -> str | None:
    """Why the engine tests cannot run here, or None."""
    need = ", ".join(f"{n} {v}" for n, v in pinned_plugins().items())
    what = f"they need the `pulumi` CLI and the resource plugins {need} (`pulumi plugin install resource <name> <version>`)"
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


@dataclass
class Result:
    returncode: int
    output: str  # stdout and stderr: what a person running the command sees
    events: list[dict[str, Any]] = field(default_factory=list)

    def ops(self, type_: str | None = None) -> list[tuple[str, str]]:
        """(op, urn) of every step the engine took or planned, optionally of one resource type."""
        steps = []
        for event in self.events:
            meta = (event.get("resourcePreEvent") or {}).get("metadata")
            if meta and (type_ is None or meta.get("type") == type_):
                steps.append((meta["op"], meta["urn"]))
        return steps

    def changes(self) -> dict[str, int]:
        for event in self.events:
            if "summaryEvent" in event:
                return event["summaryEvent"].get("resourceChanges") or {}
        return {}


class Project:
    """A copy of the project (sharing the repository's venv) with one stack on a file backend."""

    def __init__(self, workdir: Path, stack: str, stack_file: Path, kubeconfig: str | None):
        self.dir = workdir / "project"
        self.stack = stack
        ignore = shutil.ignore_patterns("venv", ".git", "__pycache__", ".pytest_cache", ".ruff_cache", "Pulumi.*.yaml")
        shutil.copytree(ROOT, self.dir, ignore=ignore)
        (self.dir / "venv").symlink_to(ROOT / "venv")
        shutil.copy(stack_file, self.dir / f"Pulumi.{stack}.yaml")
        (workdir / "state").mkdir()
        self.env = {
            **os.environ,
            "PULUMI_BACKEND_URL": f"file://{workdir / 'state'}",
            "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "KUBECONFIG": kubeconfig or str(workdir / "no-cluster"),
        }
        self.events = workdir / "events"
        self.events.mkdir()
        self.runs = 0
        created = self.run("stack", "init", stack)
        assert created.returncode == 0, created.output

    def run(self, *args: str, stdin: str | None = None, timeout: int = 1800) -> Result:
        self.runs += 1
        log = self.events / f"{self.runs}.jsonl"
        command = ["pulumi", *args, "--non-interactive"]
        if args[:2] != ("stack", "init"):
            command += ["--stack", self.stack]
        if args[0] in ("preview", "up", "destroy", "refresh"):
            command += ["--event-log", str(log)]  # one JSON event per line: the steps, the summary
        done = subprocess.run(
            command, cwd=self.dir, env=self.env, input=stdin, capture_output=True, text=True, timeout=timeout
        )
        events = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []
        return Result(done.returncode, done.stdout + done.stderr, events)

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
