"""Read back what an install script would place: path -> (mode, content)."""

from __future__ import annotations

import base64
import shlex

from k8s_workers.scripts.commands import decode_install_stdin


def placed_files(script: str) -> dict[str, tuple[str, str]]:
    """`script`: the install script, or the stdin that carries it (compressed)."""
    if not script.startswith("#!"):
        script = decode_install_stdin(script)
    files = {}
    for line in map(str.strip, script.splitlines()):
        if line.startswith("put_file "):
            _, path, mode, _restarts, content = shlex.split(line)
            files[path] = (mode, base64.b64decode(content).decode())
    return files
