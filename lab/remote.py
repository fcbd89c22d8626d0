"""Running the program's remote commands on lab hosts, exactly as pulumi-command does:
the command line as the SSH command, the script on stdin, one session per command."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from k8s_workers.scripts.commands import REMOVED_PREFIX, SUMMARY_PREFIX
from lab.hosts import LabHost, ssh_command
from lab.paths import KNOWN_HOSTS


class HostError(RuntimeError):
    """A remote command failed on one host; the message starts with the host's name."""


@dataclass
class RemoteResult:
    host: str
    returncode: int
    stdout: str
    stderr: str

    def line(self, prefix: str) -> dict[str, Any]:
        for text in self.stdout.splitlines():
            if text.startswith(prefix):
                return json.loads(text.removeprefix(prefix))
        raise HostError(f"{self.host}: no {prefix.strip()} line in:\n{self.stdout}\n{self.stderr}")

    @property
    def summary(self) -> dict[str, Any]:
        return self.line(SUMMARY_PREFIX)

    @property
    def removed(self) -> dict[str, Any]:
        return self.line(REMOVED_PREFIX)


def run(
    host: LabHost, command: str, stdin: str = "", known_hosts: Path = KNOWN_HOSTS, timeout: int = 300
) -> RemoteResult:
    result = subprocess.run(
        ssh_command(host, command, known_hosts=known_hosts),
        input=stdin, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    return RemoteResult(host.name, result.returncode, result.stdout, result.stderr)


def check(host: LabHost, command: str, stdin: str = "", **kwargs: Any) -> RemoteResult:
    result = run(host, command, stdin, **kwargs)
    if result.returncode != 0:
        raise HostError(f"{host.name}: exit {result.returncode}: {result.stderr.strip()}")
    return result


def shell(host: LabHost, script: str) -> str:
    """Run a small inspection script; its stdout."""
    return check(host, "bash -s", script).stdout
