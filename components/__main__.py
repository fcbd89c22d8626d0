"""Command line: `python -m components render --stack dev --out DIR`, and
`python -m components fleet preview|up|refresh|destroy` over the stacks fleet.yaml lists, and
`python -m components summary --stack NAME FILE`: what a preview does to the nodes, from its JSON, and
`python -m components rbac [--deployer group:NAME] [--previewer user:NAME]`: the program's own RBAC."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

from components.stack_config import PROJECT_DIR, raw_from_stack_file
from k8s_workers.config.loader import ConfigError, load_config
from k8s_workers.config.types import yaml_problem
from k8s_workers.render.stack import render_stack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components")
    commands = parser.add_subparsers(dest="command", required=True)
    render = commands.add_parser("render", help="write every file each node would receive")
    render.add_argument("--stack", required=True, help="stack name: reads Pulumi.<stack>.yaml")
    render.add_argument("--out", required=True, type=Path, help="output directory")
    render.add_argument("--project-dir", type=Path, default=PROJECT_DIR, help=argparse.SUPPRESS)
    fleet = commands.add_parser("fleet", help="run a pulumi command over the fleet's stacks, wave by wave")
    fleet.add_argument("action", choices=["preview", "up", "refresh", "destroy"])
    fleet.add_argument("--file", type=Path, default=PROJECT_DIR / "fleet.yaml", help="the fleet file")
    fleet.add_argument("--parallel", type=int, help="stacks at once (default: the fleet file's)")
    fleet.add_argument("--logs", type=Path, default=Path(".fleet"), help="each stack's output goes here")
    fleet.add_argument("pulumi_args", nargs="*", help="more pulumi arguments, after --")
    summary = commands.add_parser("summary", help="what a preview does to the nodes (markdown), from its JSON")
    summary.add_argument("--stack", required=True, help="the stack's name, for the heading")
    summary.add_argument("file", type=Path, help="`pulumi preview --json` output, or an engine event log")
    summary.add_argument("--diff", type=Path, help="the preview's text: make the whole pull-request comment")
    summary.add_argument("--artifact", default="preview", help="with --diff: where the whole text is kept")
    rbac = commands.add_parser("rbac", help="the RBAC `pulumi up` and previews need (YAML, for kubectl apply)")
    rbac.add_argument("--deployer", default="group:k8s-workers:deployer", help="who runs `up`: group:NAME or user:NAME")
    rbac.add_argument("--previewer", default="group:k8s-workers:previewer", help="who runs previews")
    args = parser.parse_args(argv)
    if args.command == "rbac":
        from k8s_workers.render.program_rbac import program_rbac

        print(yaml.safe_dump_all(program_rbac(args.deployer, args.previewer), sort_keys=False), end="")
        return 0
    if args.command == "fleet":
        return _fleet(args)
    if args.command == "summary":
        from k8s_workers.decisions.preview_summary import comment, steps_from, summarize

        lines = summarize(steps_from(args.file.read_text())).lines(args.stack)
        if args.diff is None:
            print("\n".join(lines))
        else:
            print(comment(args.stack, lines, args.diff.read_text(errors="replace"), args.artifact))
        return 0

    out = args.out.resolve()
    os.chdir(args.project_dir)  # file paths in stack config are relative to the project, as under Pulumi
    stack_file = args.project_dir / f"Pulumi.{args.stack}.yaml"
    if not stack_file.is_file():
        print(f"error: no stack file {stack_file}", file=sys.stderr)
        return 2
    try:
        config = load_config(raw_from_stack_file(args.stack, args.project_dir), require_secrets=False)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except yaml.YAMLError as error:  # the file, line and column, not a traceback
        print(f"error: {stack_file.name} {yaml_problem(error)}", file=sys.stderr)
        return 2
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    written = render_stack(config, out)
    print(f"rendered {len(written)} files for {len(config.nodes)} nodes into {out}")
    return 0


def _fleet(args: argparse.Namespace) -> int:
    from k8s_workers.decisions.fleet_waves import FleetFileError, read_fleet_file, waves_for
    from k8s_workers.fleet_runner import run_fleet

    try:
        fleet = read_fleet_file(args.file)
    except FleetFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    runs = run_fleet(
        args.action,
        waves_for(args.action, fleet),
        args.parallel or fleet.parallel,
        args.pulumi_args,
        cwd=args.file.resolve().parent,
        logs=args.logs.resolve(),
    )
    failed = [r.stack for r in runs if r.returncode not in (0, None)]
    skipped = [r.stack for r in runs if r.returncode is None]
    print(f"fleet {args.action}: {len(runs) - len(failed) - len(skipped)} ok, failed: {failed or 'none'}"
          + (f", not run: {skipped}" if skipped else ""))  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
