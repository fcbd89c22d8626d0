"""`make demo`'s first checks (lab/demo.py): what a newcomer without root or a Pulumi CLI is told."""

from __future__ import annotations

import pytest

from lab import demo


def test_without_root_and_without_a_pulumi_cli_both_are_named_with_their_fix(monkeypatch, tmp_path):
    monkeypatch.setattr(demo.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(demo.shutil, "which", lambda _name: None)
    monkeypatch.setattr(demo.tools, "missing", lambda: ["debootstrap", "go"])
    monkeypatch.setenv("PULUMI_HOME", str(tmp_path))  # no ~/.pulumi/bin/pulumi there either
    with pytest.raises(demo.DemoError) as raised:
        demo.prerequisites()
    message = str(raised.value)
    assert "needs root" in message and "sudo make demo" in message
    assert "the lab needs debootstrap, go: install `apt-get install debootstrap` and Go 1.26" in message
    assert "no `pulumi` CLI" in message and "then `make demo` again" in message


def test_a_pulumi_cli_in_the_installers_folder_is_found_without_path(monkeypatch, tmp_path):
    cli = tmp_path / "bin" / "pulumi"
    cli.parent.mkdir()
    cli.write_text("#!/bin/sh\n")
    monkeypatch.setattr(demo.os, "geteuid", lambda: 0)
    monkeypatch.setattr(demo.shutil, "which", lambda _name: None)
    monkeypatch.setattr(demo.tools, "missing", lambda: [])
    monkeypatch.setenv("PULUMI_HOME", str(tmp_path))
    assert demo.prerequisites() == str(cli)
    assert demo.environment(str(cli))["PATH"].startswith(f"{cli.parent}:")
