"""Kubernetes' own conformance tests on nodes the program installed (markers `lab`, `engine`): the
smoke subset (`python -m lab conformance --smoke`: the quick [sig-node] and [sig-network]
[Conformance] tests) on the lab's 3 systemd hosts after a real `pulumi up` of the lab stack.
Zero failures, and nothing skipped but the documented list (lab.conformance.SKIPS) and what the
smoke subset leaves to the full run ([Slow], [Serial], the minutes-long probe tests)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from lab import build, cluster, cluster_dns, conformance
from lab.hosts import LabHost
from lab.paths import DEPLOYER_KUBECONFIG
from lab.stack import stack_document
from lab.state import LabState
from tests.engine.pulumi_cli import ROOT, Project, missing
from tests.lab_session import RawFactory, clean_slate

pytestmark = [pytest.mark.engine, pytest.mark.lab]

if (why := missing()) is not None:
    pytest.skip(f"CONFORMANCE SMOKE SKIPPED: {why}", allow_module_level=True)

SMOKE_MINUTES = 10  # the CI budget for the suite itself (measured 6.3 min on 2 cores, 8.4 min with the setup)


@pytest.fixture(scope="module")
def installed_by_the_engine(
    lab: LabState, systemd_hosts: list[LabHost], lab_raw: RawFactory, tmp_path_factory
) -> Iterator[list[LabHost]]:
    """The 3 hosts made nodes by `pulumi up` of the lab stack, as the program's own identity; the
    suite's images and the cluster DNS add-on in place. Destroyed again at the end."""
    build.build_all(plan=build.conformance_builds())
    clean_slate(lab_raw(), systemd_hosts)
    cluster.kubectl("apply", "-f", str(ROOT / "rbac" / "program-rbac.yaml"))
    project = Project(tmp_path_factory.mktemp("conformance"), "lab", None, kubeconfig=str(DEPLOYER_KUBECONFIG))
    project.stack_file.write_text(stack_document(lab_raw(), DEPLOYER_KUBECONFIG))
    up = project.up()
    assert up.returncode == 0, up.output
    conformance.install_images(systemd_hosts)
    conformance.route_pod_networks(systemd_hosts)
    cluster_dns.ensure()
    yield systemd_hosts
    cluster.kubectl("delete", "-f", "-", "--ignore-not-found", stdin=_as_list(cluster_dns.manifests()))
    project.run("destroy", "--yes", "--skip-preview")


def _as_list(manifests: list[dict[str, Any]]) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests})


def test_the_smoke_subset_passes_with_only_the_documented_skips(installed_by_the_engine: list[LabHost]) -> None:
    skip = conformance.skip_regex(conformance.SKIPS) + "|" + conformance.SMOKE_EXCLUDE
    code, summary, report_dir = conformance.run(conformance.SMOKE_FOCUS, skip, procs=4)
    assert summary is not None, f"no JUnit report in {report_dir}"
    print(summary.table())
    assert summary.failed == [], f"failed (log: {report_dir / 'e2e.log'}):\n" + "\n".join(summary.failed)
    assert code == 0, f"e2e.test exited {code}: {report_dir / 'e2e.log'}"
    assert summary.total().passed > 0
    # Every skip is accounted for: documented (SKIPS) or left to the full run (SMOKE_EXCLUDE).
    leftover = re.compile(conformance.SMOKE_EXCLUDE)
    unexplained = [n for n in summary.skipped if n not in conformance.documented_skips([n]) and not leftover.search(n)]
    assert unexplained == [], "skipped without a documented reason:\n" + "\n".join(unexplained)
    elapsed = (report_dir / "e2e.log").stat().st_mtime - (report_dir / "command").stat().st_mtime
    assert elapsed < SMOKE_MINUTES * 60, f"the smoke subset took {elapsed / 60:.1f} min"
