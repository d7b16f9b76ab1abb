"""Describe the machine and command a benchmark ran on (printed with every result)."""

from __future__ import annotations

import os
import platform
import sys
from datetime import UTC, datetime


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def banner(title: str) -> str:
    return (
        f"== {title} ==\n"
        f"when:    {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}\n"
        f"machine: {cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}\n"
        f"python:  {sys.version.split()[0]}\n"
        f"command: {' '.join(sys.argv)}"
    )
