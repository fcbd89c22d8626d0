"""Regenerate k8s_workers/config/kubelet_schemas/1.<minor>.json from the k8s.io/kubelet Go types
of each supported minor: builds main.go (beside this file) against that module version from the
Go module proxy and keeps what it prints; then reads which kubelet flags set which field from
that minor's k8s.io/kubernetes source (cmd/kubelet/app/options, AddKubeletConfigFlags).

Usage: venv/bin/python tools/kubelet_schema/generate.py   (needs Go 1.26 and the module proxy)
"""

from __future__ import annotations

import json
import re
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
# A k8s.io/kubernetes release of each minor that the module proxy serves (not every patch is).
KUBERNETES_SOURCE = {34: "v1.34.4", 35: "v1.35.6", 36: "v1.36.4", 37: "v1.37.2"}
_FLAG_BINDING = re.compile(r'&c\.(\w+)[^"]*"([a-z0-9-]+)"')


def flag_fields(minor: int, go_names: dict[str, str], work: Path) -> dict[str, str]:
    """--flag -> the KubeletConfiguration field it sets, from AddKubeletConfigFlags of Kubernetes 1.<minor>."""
    module = json.loads(go("mod", "download", "-json", f"k8s.io/kubernetes@{KUBERNETES_SOURCE[minor]}", cwd=work))
    source = (Path(module["Dir"]) / "cmd/kubelet/app/options/options.go").read_text()
    body = source[source.index("func AddKubeletConfigFlags") :]
    flags = {}
    for go_name, flag in _FLAG_BINDING.findall(body):
        if go_name in go_names:  # internal-only fields have no v1beta1 name
            flags[f"--{flag}"] = go_names[go_name]
    return dict(sorted(flags.items()))


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
        printed = json.loads(go("run", ".", source, cwd=work))
        flags = flag_fields(minor, printed["goNames"], work)
    return {
        "minor": f"1.{minor}",
        "module": f"k8s.io/kubelet@{version}",
        "generatedBy": "venv/bin/python tools/kubelet_schema/generate.py",
        "schema": printed["schema"],
        "flags": flags,
        "flagsFrom": f"k8s.io/kubernetes@{KUBERNETES_SOURCE[minor]} cmd/kubelet/app/options",
    }


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for minor, version in MODULES.items():
        data = generate(minor, version)
        (OUT / f"1.{minor}.json").write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        print(
            f"1.{minor}: {len(data['schema']['properties'])} fields from k8s.io/kubelet@{version}, "
            f"{len(data['flags'])} flags that set them",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
