"""The fleet command's order and bounds, with a stand-in `pulumi` on PATH that records each run
(the real engine runs the fleet in tests/engine/test_engine_fleet.py)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from components.__main__ import main
from k8s_workers.decisions.fleet_waves import FleetFile, FleetFileError, read_fleet_file, waves_for

FAKE_PULUMI = """#!/bin/bash
# Records "<start|end> <command> <stack>" with a timestamp; fails for stacks named in $FAIL.
stack=$3
echo "$(date +%s.%N) start $1 $stack" >> "$RECORD"
sleep 0.3
echo "$(date +%s.%N) end $1 $stack" >> "$RECORD"
printf 'Resources:\n    + 2 to create\n    3 unchanged\n\nDuration: 1s\n'
 echo "warning: a warning after the summary"
if [[ " $FAIL " == *" $stack "* ]]; then echo "error: $stack broke" >&2; exit 1; fi
"""


@pytest.fixture
def fake_pulumi(tmp_path, monkeypatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "pulumi"
    script.write_text(FAKE_PULUMI)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    record = tmp_path / "record"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("RECORD", str(record))
    (tmp_path / "fleet.yaml").write_text("cluster: c\nwaves:\n  - [canary]\n  - [p1, p2, p3]\nparallel: 2\n")
    return tmp_path


def _events(tmp: Path) -> list[tuple[float, str, str, str]]:
    rows = [line.split() for line in (tmp / "record").read_text().splitlines()]
    return sorted((float(t), what, command, stack) for t, what, command, stack in rows)


def _max_at_once(events: list[tuple[float, str, str, str]]) -> int:
    running = peak = 0
    for _, what, _, _ in events:
        running += 1 if what == "start" else -1
        peak = max(peak, running)
    return peak


def test_up_runs_the_cluster_stack_then_each_wave_bounded(fake_pulumi, capsys):
    code = main(["fleet", "up", "--file", str(fake_pulumi / "fleet.yaml"), "--logs", str(fake_pulumi / "logs")])
    assert code == 0
    events = _events(fake_pulumi)
    order = [stack for _, what, _, stack in events if what == "start"]
    assert order[:2] == ["c", "canary"] and set(order[2:]) == {"p1", "p2", "p3"}
    ends = {stack: t for t, what, _, stack in events if what == "end"}
    starts = {stack: t for t, what, _, stack in events if what == "start"}
    assert ends["c"] <= starts["canary"] and ends["canary"] <= min(starts[p] for p in ("p1", "p2", "p3"))
    assert _max_at_once(events) == 2  # the third pool waited for a slot
    out = capsys.readouterr().out
    assert "p2: up ok in" in out and "fleet up: 5 ok, failed: none" in out
    assert "s; + 2 to create, 3 unchanged [" in out  # each stack's line: its resource summary
    assert "--yes --skip-preview" in (fake_pulumi / "logs" / "p1.log").read_text()


def test_a_failed_wave_stops_the_run_and_names_what_did_not_run(fake_pulumi, capsys, monkeypatch):
    monkeypatch.setenv("FAIL", "canary")
    code = main(["fleet", "up", "--file", str(fake_pulumi / "fleet.yaml"), "--logs", str(fake_pulumi / "logs")])
    assert code == 1
    started = {stack for _, what, _, stack in _events(fake_pulumi) if what == "start"}
    assert started == {"c", "canary"}
    out = capsys.readouterr().out
    assert "canary: up FAILED (exit 1) in" in out and "error: canary broke" in out
    assert "fleet up: 1 ok, failed: ['canary'], not run: ['p1', 'p2', 'p3']" in out


def test_preview_runs_every_stack_at_once_within_the_bound(fake_pulumi):
    code = main(["fleet", "preview", "--parallel", "3", "--file", str(fake_pulumi / "fleet.yaml"),
                 "--logs", str(fake_pulumi / "logs")])  # fmt: skip
    assert code == 0
    events = _events(fake_pulumi)
    assert {stack for _, what, _, stack in events if what == "start"} == {"c", "canary", "p1", "p2", "p3"}
    assert _max_at_once(events) == 3


def test_destroy_takes_the_waves_in_reverse_and_the_cluster_stack_last():
    fleet = FleetFile(cluster="c", waves=[["canary"], ["p1", "p2"]])
    assert waves_for("destroy", fleet) == [["p1", "p2"], ["canary"], ["c"]]
    assert waves_for("up", fleet) == [["c"], ["canary"], ["p1", "p2"]]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("waves: []\n", "waves: List should have at least 1 item"),
        ("waves: [[a], [b, a]]\n", "stack 'a' is in more than one wave"),
        ("cluster: c\nwaves: [[c]]\n", "the cluster stack 'c' is not a pool"),
        ("waves: [[a]]\nparalel: 2\n", "paralel: Extra inputs are not permitted"),
    ],
)
def test_a_bad_fleet_file_names_the_key(tmp_path, text, words):
    path = tmp_path / "fleet.yaml"
    path.write_text(text)
    with pytest.raises(FleetFileError, match=words):
        read_fleet_file(path)
