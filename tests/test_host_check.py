"""The drift check's SSH side (k8s_workers/host_check.py) against a real SSH server on 127.0.0.1
(asyncssh's): the stack's key or the SSH agent, the host key pinned, and every failure `unknown`.
What the check finds on a real host: tests/e2e/test_drift.py."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import asyncssh
import pytest

from k8s_workers.host_check import Connection, check_host


class _Server:
    def __init__(self) -> None:
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.client_key = asyncssh.generate_private_key("ssh-ed25519")
        self.commands: list[tuple[str, str]] = []
        self.port = 0


@pytest.fixture(scope="module")
def server() -> Iterator[_Server]:
    found = _Server()
    allowed = found.client_key.export_public_key().decode()

    class Checking(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            return username != "anyone"  # "anyone" logs in without a key (as an agent user would)

        def public_key_auth_supported(self) -> bool:
            return True

        def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
            return key.export_public_key().decode() == allowed

    async def session(process: asyncssh.SSHServerProcess) -> None:
        script = await process.stdin.read()
        found.commands.append((process.command or "", script))
        process.stdout.write("drift inactive kube-proxy kube-proxy\nchecked 3\n")
        process.exit(0)

    loop = asyncio.new_event_loop()
    ready = threading.Event()

    async def start() -> None:
        listener = await asyncssh.create_server(
            Checking, "127.0.0.1", 0, server_host_keys=[found.host_key], process_factory=session
        )
        found.port = listener.sockets[0].getsockname()[1]
        ready.set()

    threading.Thread(target=lambda: (loop.run_until_complete(start()), loop.run_forever()), daemon=True).start()
    assert ready.wait(30)
    yield found
    loop.call_soon_threadsafe(loop.stop)


def _connection(server: _Server, **changes: object) -> Connection:
    fields = {
        "node": "n1",
        "host": "127.0.0.1",
        "port": server.port,
        "user": "root",
        "host_key": server.host_key.export_public_key().decode().strip(),
        "insecure": False,
        "private_key": server.client_key.export_private_key().decode(),
    }
    return Connection(**{**fields, **changes})  # type: ignore[arg-type]


def test_the_stacks_key_logs_in_and_the_script_goes_on_stdin(server):
    found = check_host(_connection(server))
    assert found.state == "drift" and found.summary() == "drift: kube-proxy (inactive)", found
    command, script = server.commands[-1]
    assert command.startswith("/bin/bash -s") and "drift check" in command
    assert "/var/lib/k8s-workers" in script and script.startswith("#!/bin/bash")


def test_without_a_key_in_the_stack_it_logs_in_as_the_agent_would(server):
    assert check_host(_connection(server, user="anyone", private_key=None)).state == "drift"


def test_another_host_key_a_refused_key_and_a_closed_port_are_unknown(server):
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    stranger = asyncssh.generate_private_key("ssh-ed25519").export_private_key().decode()
    for connection in (_connection(server, host_key=other), _connection(server, private_key=stranger),
                       _connection(server, port=1)):  # fmt: skip
        found = check_host(connection, timeout=10)
        assert found.state == "unknown" and found.summary().startswith("unknown: 127.0.0.1:"), found


def test_no_connection_recorded_is_unknown_without_trying():
    assert check_host(None).summary() == "unknown: no connection recorded yet (the next `up` records it)"
