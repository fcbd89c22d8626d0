"""The conformance run's report, read without a lab: counts per SIG from e2e.test's JUnit XML, the
progress lines from ginkgo's output, and the skip list turned into ginkgo's --skip."""

from __future__ import annotations

import re

from lab import conformance
from lab.conformance import SKIPS, progress_lines, skip_regex, summarize

JUNIT = """<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="3206" disabled="3200" errors="0" failures="2" time="300.1">
  <testsuite name="Kubernetes e2e suite" package="/bin" tests="3206" disabled="0" skipped="3200" errors="0" failures="2">
    <testcase name="[SynchronizedBeforeSuite]" classname="Kubernetes e2e suite" status="passed" time="0.2"></testcase>
    <testcase name="[It] [sig-node] Pods should be updated [Conformance] [NodeConformance]" classname="Kubernetes e2e suite" status="passed" time="5.1"></testcase>
    <testcase name="[It] [sig-node] Secrets should be consumable via the environment [Conformance] [NodeConformance]" classname="Kubernetes e2e suite" status="failed" time="7.0">
      <failure type="failed">expected "data-1=value-1" in container output</failure>
      <system-err>timeline</system-err>
    </testcase>
    <testcase name="[It] [sig-network] DNS should provide DNS for services [Conformance]" classname="Kubernetes e2e suite" status="skipped" time="0"><skipped message="skipped"></skipped></testcase>
    <testcase name="[It] [sig-network] Services should serve a basic endpoint from pods [Conformance]" classname="Kubernetes e2e suite" status="passed" time="20.0"></testcase>
    <testcase name="[It] [sig-storage] CSI Mock volume expansion should expand volume [Feature:CSI]" classname="Kubernetes e2e suite" status="skipped" time="0"><skipped message="skipped"></skipped></testcase>
    <testcase name="[It] [sig-apps] Job should run a job [Slow]" classname="Kubernetes e2e suite" status="skipped" time="0"><skipped message="skipped"></skipped></testcase>
    <testcase name="[ReportAfterSuite] Kubernetes e2e suite report" classname="Kubernetes e2e suite" status="failed" time="0.1">
      <failure type="failed">could not write the report</failure>
    </testcase>
  </testsuite>
</testsuites>
"""


def test_counts_per_sig_only_for_the_specs_in_scope():
    summary = summarize(JUNIT)
    assert {sig: (c.passed, c.failed, c.skipped) for sig, c in summary.sigs.items()} == {
        "sig-node": (1, 1, 0),
        "sig-network": (1, 0, 1),
        "other": (0, 1, 0),  # a failed setup node counts: the run did not go as it should
    }
    total = summary.total()
    assert (total.passed, total.failed, total.skipped) == (2, 2, 1)


def test_failed_and_skipped_specs_are_named_without_ginkgo_node_prefix():
    summary = summarize(JUNIT)
    assert summary.failed == [
        "[sig-node] Secrets should be consumable via the environment [Conformance] [NodeConformance]",
        "[ReportAfterSuite] Kubernetes e2e suite report",
    ]
    assert summary.skipped == ["[sig-network] DNS should provide DNS for services [Conformance]"]


def test_another_focus_counts_other_specs():
    summary = summarize(JUNIT, focus=r"\[sig-network\]")
    assert summary.sigs["sig-network"].passed == 1
    assert "sig-node" not in summary.sigs


def test_the_table_has_a_row_per_sig_and_a_total():
    table = summarize(JUNIT).table().splitlines()
    assert table[0] == "| SIG | passed | failed | skipped |"
    assert "| sig-network | 1 | 0 | 1 |" in table
    assert table[-1] == "| **total** | **2** | **2** | **1** |"


def test_progress_lines_pair_each_outcome_with_its_spec_in_either_order():
    output = [
        "Will run 3 of 3206 specs\n",
        "------------------------------\n",
        "• [3.214 seconds]\n",
        "[sig-node] Pods should be updated [Conformance] [NodeConformance] [sig-node, NodeConformance, Conformance]\n",
        "k8s.io/kubernetes@v1.37.2/test/e2e/common/node/pods.go:348\n",
        "  STEP: [sig-network] a step that mentions a SIG\n",
        "------------------------------\n",
        "[sig-node] Secrets [It] should be consumable [Conformance] [sig-node, Conformance]\n",
        "  Timeline >>\n",
        "• [FAILED] [5.779 seconds]\n",
        "------------------------------\n",
        "[SynchronizedBeforeSuite] PASSED [0.000 seconds]\n",
        "------------------------------\n",
        "• [TIMEDOUT] [600.000 seconds]\n",
        "[sig-network] Services should work [Conformance] [sig-network, Conformance]\n",
    ]
    assert list(progress_lines(output)) == [
        ("passed", "[sig-node] Pods should be updated [Conformance] [NodeConformance]"),
        ("failed", "[sig-node] Secrets should be consumable [Conformance]"),
        ("timedout", "[sig-network] Services should work [Conformance]"),
    ]


def test_every_skip_has_a_reason_and_the_regex_matches_only_its_specs():
    assert all(reason.strip() for reason in SKIPS.values())
    pattern = re.compile(skip_regex(SKIPS))
    for prefix in SKIPS:
        assert pattern.search(f"{prefix}does something [Conformance]")
    assert not pattern.search("[sig-network] Services should serve a basic endpoint from pods [Conformance]")
    assert not pattern.search("[sig-node] Pods should be updated [Conformance] [NodeConformance]")


def test_documented_skips_picks_the_names_the_list_covers():
    names = [
        "[sig-cli] Kubectl client Update Demo should scale a replication controller [Conformance]",
        "[sig-node] Pods",
    ]
    assert conformance.documented_skips(names) == names[:1]
