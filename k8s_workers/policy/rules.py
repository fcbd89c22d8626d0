"""The policy pack's rules other than CIS, over the properties the engine shows a policy.

Property names are the providers' (camelCase) as the engine passes them; secrets arrive unwrapped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

REMOTE_COMMAND = "command:remote:Command"
WORKER_NODE = "k8s-workers:index:WorkerNode"
# Outputs that echo what a command printed: secret in state, never in the engine's display.
ECHOING_OUTPUTS = ("stdout", "stderr")


def host_key_problem(command: Mapping[str, Any], waived: bool) -> str | None:
    """A remote command must pin its host's SSH key, unless its node waives it (insecureIgnoreHostKey)."""
    connection = command.get("connection") or {}
    if connection.get("hostKey") or waived:
        return None
    host = connection.get("host", "?")
    return (
        f"the SSH connection to {host} accepts any host key: set the node's ssh.hostKey "
        "(or waive it on purpose with ssh.insecureIgnoreHostKey: true)"
    )


def secret_logging_problems(command: Mapping[str, Any], additional_secret_outputs: Sequence[str]) -> list[str]:
    """A command that carries secrets (on stdin or in its environment) must not show what it prints."""
    if not command.get("stdin") and not command.get("environment"):
        return []
    problems = []
    logging = command.get("logging")
    if logging != "none":
        problems.append(
            f"it carries secrets and logs its output (logging: {logging or 'the default, stdout and stderr'}; use none)"
        )
    if command.get("addPreviousOutputInEnv") is not False:
        problems.append("it hands its output to the next command's environment (addPreviousOutputInEnv: false)")
    missing = [o for o in ECHOING_OUTPUTS if o not in additional_secret_outputs]
    if missing:
        problems.append(f"its {' and '.join(missing)} are not secret outputs (additionalSecretOutputs)")
    return problems


def is_bootstrap_token(props: Mapping[str, Any]) -> bool:
    """The node's membership resource (a dynamic resource: the type alone does not say which)."""
    return "ttlHours" in props and ("tokenGeneration" in props or "tokenId" in props)


def token_lifetime_problem(props: Mapping[str, Any], max_hours: float) -> str | None:
    ttl = props.get("ttlHours")
    if ttl is None:
        return None  # unknown at preview: the config validation bounds it too
    if not isinstance(ttl, int | float) or ttl <= 0:
        return f"the bootstrap token of node {props.get('node')} has no expiry (ttlHours: {ttl!r})"
    if ttl > max_hours:
        return (
            f"the bootstrap token of node {props.get('node')} lives {ttl} h, more than this pack allows "
            f"({max_hours} h; cluster.bootstrapTokenTtlHours)"
        )
    return None
