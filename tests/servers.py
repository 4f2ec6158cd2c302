"""Local servers a test starts (the MLflow UI, a team MLflow server): a port, a health wait."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

# A loaded 2-core machine starts MLflow's server slowly.
STARTUP_SECONDS = 120


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_healthy(base: str, server: subprocess.Popen, log: Path) -> None:
    """Return once ``base``/health answers 200; fail with the server's log if it dies or stalls."""
    started = time.monotonic()
    while True:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() - started > STARTUP_SECONDS:
            pytest.fail(f"the server did not start on {base}:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
