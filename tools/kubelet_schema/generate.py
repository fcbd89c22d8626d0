"""Regenerate k8s_workers/config/kubelet_schemas/1.<minor>.json from the k8s.io/kubelet Go types
of each supported minor: builds main.go (beside this file) against that module version from the
Go module proxy and keeps what it prints.

Usage: venv/bin/python tools/kubelet_schema/generate.py   (needs Go 1.26 and the module proxy)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE.parent.parent / "k8s_workers" / "config" / "kubelet_schemas"
# The newest patch of k8s.io/kubelet (Kubernetes 1.<minor>) per supported minor: fields do not
# change within a minor.
MODULES = {34: "v0.34.13", 35: "v0.35.10", 36: "v0.36.6", 37: "v0.37.2"}


def go(*args: str, cwd: Path) -> str:
    result = subprocess.run(["go", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"go {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def generate(minor: int, version: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="kubelet-schema-") as tmp:
        work = Path(tmp)
        shutil.copy(HERE / "main.go", work / "main.go")
        (work / "go.mod").write_text(
            f"module k8s-workers/kubelet-schema\n\ngo 1.26\n\nrequire k8s.io/kubelet {version}\n"
        )
        go("mod", "tidy", cwd=work)
        source = go("list", "-m", "-f", "{{.Dir}}", "k8s.io/kubelet", cwd=work).strip()
        schema = json.loads(go("run", ".", source, cwd=work))
    return {
        "minor": f"1.{minor}",
        "module": f"k8s.io/kubelet@{version}",
        "generatedBy": "venv/bin/python tools/kubelet_schema/generate.py",
        "schema": schema,
    }


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for minor, version in MODULES.items():
        data = generate(minor, version)
        (OUT / f"1.{minor}.json").write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        print(f"1.{minor}: {len(data['schema']['properties'])} fields from k8s.io/kubelet@{version}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
