"""The CIS Kubernetes Benchmark's worker-node checks (section 4) on nodes the program installed: kube-bench,
built from its Go module like the lab's other binaries, with the project's paths (cis/kube-bench-config.yaml),
run on each node as a user would (docs/security.md: CIS). No FAIL; each WARN is one that page lists, with why."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from lab import build, pins, remote

ROOT = Path(__file__).resolve().parents[2]
ON_HOST = "/opt/kube-bench"  # where a user would unpack it; removed after the run


def _results(host: Any) -> dict[str, list[dict[str, Any]]]:
    """kube-bench's node results on the host, by status."""
    binary = build.binary("kube-bench")
    target = Path(host.root) / ON_HOST.lstrip("/")
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(binary.parent.parent / "cfg", target / "cfg")
    shutil.copy(ROOT / "cis" / "kube-bench-config.yaml", target / "cfg" / pins.KUBE_BENCH_BENCHMARK / "config.yaml")
    shutil.copy(binary, target / "kube-bench")
    try:
        out = remote.shell(
            host,
            f"cd {ON_HOST} && ./kube-bench run --targets node --benchmark {pins.KUBE_BENCH_BENCHMARK} "
            f"--config-dir {ON_HOST}/cfg --json 2>/dev/null",
        )
    finally:
        shutil.rmtree(target, ignore_errors=True)
    by_status: dict[str, list[dict[str, Any]]] = {}
    for control in json.loads(out[out.index("{") :])["Controls"]:
        for group in control["tests"]:
            for result in group["results"]:
                by_status.setdefault(result["status"], []).append(result)
    return by_status


def _checks() -> int:
    """How many checks the benchmark's node section has (its own file)."""
    node = build.binary("kube-bench").parent.parent / "cfg" / pins.KUBE_BENCH_BENCHMARK / "node.yaml"
    return len(re.findall(r"^\s+- id: 4\.\d+\.\d+\s*$", node.read_text(), re.M))


def _documented_warns() -> set[str]:
    """The WARN ids the CIS table of docs/security.md lists."""
    section = (ROOT / "docs" / "security.md").read_text().split("\n## CIS\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| (4\.\d+\.\d+) \| WARN \|", section, re.M))


def test_kube_bench_finds_no_fail_and_only_the_documented_warnings(installed):
    _, jobs = installed
    for job in jobs:
        results = _results(job.host)
        fails = [
            f"{r['test_number']} {r['test_desc']}: {r.get('reason') or r.get('actual_value')}"
            for r in results.get("FAIL", [])
        ]
        assert not fails, f"{job.host.name}: " + "; ".join(fails)
        # Every check of the section ran: each one PASS but the documented WARNs (no INFO, no skip).
        assert set(results) <= {"PASS", "WARN"}, {k: [r["test_number"] for r in v] for k, v in results.items()}
        assert sum(map(len, results.values())) == _checks(), results
        warns = {r["test_number"] for r in results.get("WARN", [])}
        assert warns == _documented_warns(), (
            job.host.name,
            sorted(warns),
            {r["test_number"]: r["test_desc"] for r in results.get("WARN", [])},
        )
