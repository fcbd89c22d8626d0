"""The exact shell each remote command runs (pure: no Pulumi).

`install_script` and `removal_script` are what runs on the host; `install_command`
and `removal_command` are the command lines the SSH session starts. The install
script carries secrets, so it travels on stdin; the command line only carries a
reviewable manifest (paths, modes, content hashes) so `pulumi preview` shows which
file of which node changes.
"""

from __future__ import annotations

from k8s_workers.render.host_paths import PATHS
from k8s_workers.render.templating import render
from k8s_workers.scripts.install_plan import NodePlan, sha256_text

SUMMARY_PREFIX = "K8S_WORKERS_SUMMARY "
REMOVED_PREFIX = "K8S_WORKERS_REMOVED "


def install_script(plan: NodePlan) -> str:
    return render("scripts/install.sh.j2", plan=plan, paths=PATHS)


def removal_script(plan: NodePlan) -> str:
    return render("scripts/remove.sh.j2", plan=plan, paths=PATHS)


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


def install_command(plan: NodePlan, user: str) -> str:
    header = f"{_shell(user)} -s  # k8s-workers: install node {plan.node}; the script arrives on stdin"
    return "\n".join([header, *(f"# {line}" for line in install_manifest(plan))]) + "\n"


def removal_command(plan: NodePlan, user: str) -> str:
    marker = "K8S_WORKERS_REMOVE_SCRIPT"
    return f"{_shell(user)} -s <<'{marker}'\n{removal_script(plan)}{marker}\n"
