"""A thin adapter: run the read-only drift check on a node's host over SSH (asyncssh), bounded in
time; the membership's refresh calls it (components/membership.py). One session, the script on
stdin, the host key pinned as the install pins it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from k8s_workers.decisions.host_drift import HostCheck, parse_check, unknown
from k8s_workers.scripts.commands import check_command, check_script

TIMEOUT_S = 30.0  # connect and run: a refresh of a fleet must not wait long on one host


@dataclass(frozen=True)
class Connection:
    node: str
    host: str
    port: int
    user: str
    host_key: str | None  # "ssh-ed25519 AAAA..."; None only with insecure
    insecure: bool
    private_key: str | None  # PEM; None: the SSH agent

    @classmethod
    def of_props(cls, props: dict) -> Connection | None:
        ssh = props.get("ssh")
        if not ssh:
            return None  # state written before drift checks, or a host gone for good
        return cls(props["node"], ssh["host"], int(ssh["port"]), ssh["user"], ssh.get("hostKey"),
                   bool(ssh.get("insecure")), props.get("sshPrivateKey"))  # fmt: skip


async def _run(connection: Connection) -> str:
    import asyncssh

    if connection.insecure:
        known_hosts = None
    else:
        where = connection.host if connection.port == 22 else f"[{connection.host}]:{connection.port}"
        known_hosts = asyncssh.import_known_hosts(f"{where} {connection.host_key}\n")
    # The stack's key alone when it has one (no agent, no ~/.ssh); else the SSH agent, as the install.
    auth: dict = {}
    if connection.private_key:
        auth = {"client_keys": [asyncssh.import_private_key(connection.private_key)], "agent_path": None}
    async with asyncssh.connect(
        connection.host, connection.port, username=connection.user, known_hosts=known_hosts, config=(), **auth
    ) as conn:
        result = await conn.run(check_command(connection.user), input=check_script(connection.node), check=True)
        return str(result.stdout)


def check_host(connection: Connection | None, timeout: float = TIMEOUT_S) -> HostCheck:
    """What differs on the host; `unknown` (never an exception) when it cannot be asked."""
    if connection is None:
        return unknown("no connection recorded yet (the next `up` records it)")
    try:
        return parse_check(asyncio.run(asyncio.wait_for(_run(connection), timeout)))
    except TimeoutError:
        return unknown(f"{connection.host}:{connection.port} did not answer within {timeout:.0f} s")
    except Exception as exc:  # unreachable, refused, host key changed, not our output
        return unknown(f"{connection.host}:{connection.port}: {type(exc).__name__}: {exc}")
