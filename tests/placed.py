"""Read back what an install script would place: path -> (mode, content)."""

from __future__ import annotations

import base64
import shlex


def placed_files(script: str) -> dict[str, tuple[str, str]]:
    files = {}
    for line in map(str.strip, script.splitlines()):
        if line.startswith("put_file "):
            _, path, mode, _restarts, content = shlex.split(line)
            files[path] = (mode, base64.b64decode(content).decode())
    return files
