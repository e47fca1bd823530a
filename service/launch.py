"""How archcast runs BentoML's server: a free port, one command line and one readiness wait, shared by
`archcast serve`, the real-server test and the service benchmark."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SERVICE = "service.service:Archcast"


def free_port(host: str = "127.0.0.1") -> int:
    """A loopback port nothing listens on now (the OS picks it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def serve_command(host: str = "127.0.0.1", port: int = 3000) -> list[str]:
    return [sys.executable, "-m", "bentoml", "serve", SERVICE, "--host", host, "--port", str(port)]


def wait_ready(server: subprocess.Popen, port: int, host: str = "127.0.0.1", timeout: float = 120.0) -> None:
    """Poll /readyz until it answers 200; raise RuntimeError if the server exits or the time runs out."""
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if server.poll() is not None or time.time() > deadline:
            err = server.stderr.read().decode()[-2000:] if server.stderr else ""
            raise RuntimeError(f"bentoml serve did not become ready on port {port}: {err}")
        time.sleep(0.5)
