"""The exact shell each remote command runs (pure: no Pulumi).

`install_script` and `removal_script` are what runs on the host; `install_command`
and `removal_command` are the command lines the SSH session starts. The install
script carries secrets, so it travels on stdin (`install_stdin`: compressed, since the engine
keeps it, encrypted, in every node's state and rewrites the state after every step). The command
line is the same on every run: a change shows as the (secret) stdin's, and what it changes is named
by the node's membership (the setting and the service it restarts); each file's path, mode and
hash is `make render`'s (`install_manifest`).
"""

from __future__ import annotations

import base64
import gzip
import textwrap

from k8s_workers.render.host_paths import PATHS
from k8s_workers.render.templating import render
from k8s_workers.scripts.install_plan import NodePlan, sha256_text

SUMMARY_PREFIX = "K8S_WORKERS_SUMMARY "
REMOVED_PREFIX = "K8S_WORKERS_REMOVED "


def install_script(plan: NodePlan) -> str:
    return render("scripts/install.sh.j2", plan=plan, paths=PATHS)


def removal_script(plan: NodePlan) -> str:
    """The script the install places at PATHS.removal_script (one of the plan's files)."""
    return next(f.content for f in plan.files if f.path == PATHS.removal_script)


def _shell(user: str) -> str:
    return "/bin/bash" if user == "root" else "sudo -n /bin/bash"


SECRET_FILE_MARK = "secret-on-stdin"


def install_manifest(plan: NodePlan) -> list[str]:
    """One line per artifact and file. Secret files carry no hash (a hash of a token is still
    derived from it) and nothing unknown before the first `up`: the whole manifest is known at
    the first preview; a new token or certificate shows as a change of the (secret) stdin."""
    lines = [f"artifact {a.name} {a.url} sha256:{a.sha256}" for a in plan.artifacts]
    lines += [f"preinstalled {path}" for path in plan.preinstalled]
    for f in plan.files:
        lines.append(f"file {f.path} {f.mode} {SECRET_FILE_MARK if f.secret else f'sha256:{sha256_text(f.content)}'}")
    return lines


def install_stdin(plan: NodePlan, repair: int | None = None) -> str:
    """The install script as it travels: gzip (no timestamp: the same script, the same bytes),
    then base64 in lines. `repair`: the host drift this run repairs (a number the membership raises),
    a comment after the script's last line, so the same install runs again."""
    script = install_script(plan) + (f"# repair of host drift {repair}\n" if repair else "")
    packed = gzip.compress(script.encode(), compresslevel=9, mtime=0)
    return "\n".join(textwrap.wrap(base64.b64encode(packed).decode(), 76)) + "\n"


def decode_install_stdin(stdin: str) -> str:
    """What `install_stdin` carries: the script the host runs (for tests and post-mortems)."""
    return gzip.decompress(base64.b64decode(stdin)).decode()


# The whole script is read and checked (gzip's CRC) before any of it runs: one cut short in transit
# runs nothing.
_UNPACK_AND_RUN = (
    "for tool in base64 gzip; do command -v $tool >/dev/null || "
    '{ echo "k8s-workers: $tool is needed to unpack the install script: nothing ran" >&2; exit 1; }; done; '
    "set -o pipefail; script=$(base64 -d | gzip -dc) || "
    '{ echo "k8s-workers: the install script arrived incomplete: nothing ran" >&2; exit 1; }; '
    'exec /bin/bash -s <<<"$script"'
)


def install_command(plan: NodePlan, user: str) -> str:
    header = (
        f"{_shell(user)} -c '{_UNPACK_AND_RUN}'  # k8s-workers: install node {plan.node}; "
        "the script arrives on stdin (gzip, base64)"
    )
    return header + "\n"


def removal_command(plan: NodePlan, user: str) -> str:
    """Runs the removal script the node's install placed, if the host still holds this node (a host
    now installed as another node, a rename, is left alone: its script would remove that node)."""
    return render("scripts/remove-command.sh.j2", plan=plan, paths=PATHS, shell=_shell(user))


def check_script(node: str) -> str:
    """The read-only drift check `pulumi refresh` runs on a node (scripts/check.sh.j2): no secret in it."""
    return render("scripts/check.sh.j2", node=node, state_dir=PATHS.state_dir)


def check_command(user: str) -> str:
    """The command line of the drift check's SSH session; the script arrives on stdin."""
    return f"{_shell(user)} -s  # k8s-workers: drift check, read-only"
