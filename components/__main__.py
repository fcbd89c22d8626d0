"""Command line: `python -m components render --stack dev --out DIR`."""

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
    args = parser.parse_args(argv)

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


if __name__ == "__main__":
    sys.exit(main())
