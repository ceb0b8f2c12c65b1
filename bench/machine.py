"""What the figures were measured on: cores, CPU model, memory, disk, Python."""

from __future__ import annotations

import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path


def _first(path: str, key: str) -> str:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def machine() -> dict[str, object]:
    tmp = tempfile.gettempdir()
    mem_kb = _first("/proc/meminfo", "MemTotal").split()[0]
    return {
        "cores": os.cpu_count(),
        "cpu": _first("/proc/cpuinfo", "model name"),
        "memory_gb": round(int(mem_kb) / 1024 / 1024, 1) if mem_kb.isdigit() else None,
        "disk_free_gb_at_tmp": round(shutil.disk_usage(tmp).free / 1e9, 1),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }
