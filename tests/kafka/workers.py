"""Start and stop real service processes for the Kafka tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


class ServiceProcess:
    """One ``earlywarn <service>`` process, logging to a file in ``workdir``."""

    def __init__(self, args: list[str], workdir: Path, name: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[2],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no final commit — the crash case."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def rules_worker(
    bootstrap: str,
    namespace: str,
    workdir: Path,
    name: str,
    lateness_s: int,
    engine: str = "native",
    network: str = "rainband",
) -> ServiceProcess:
    return ServiceProcess(
        [
            "rules",
            "--engine",
            engine,
            "--broker",
            f"kafka://{bootstrap}",
            "--namespace",
            namespace,
            "--data-dir",
            str(workdir / name),
            "--allowed-lateness-s",
            str(lateness_s),
            "--network",
            network,
        ],
        workdir,
        name,
    )
