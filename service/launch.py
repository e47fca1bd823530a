"""How archcast runs BentoML's server: a free port, one command line and one readiness wait, shared by
`archcast serve`, the real-server test and the service benchmark; and `run_server`, which owns the server's
whole process tree for `archcast serve`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SERVICE = "service.service:Archcast"


def free_port(host: str = "127.0.0.1") -> int:
    """A loopback port nothing listens on now (the OS picks it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def serve_command(host: str = "127.0.0.1", port: int = 3000, service: str = SERVICE) -> list[str]:
    return [sys.executable, "-m", "bentoml", "serve", service, "--host", host, "--port", str(port)]


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


FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)


def _die_with_parent() -> None:
    """In the server's process, before exec: Linux sends it SIGTERM if archcast dies, even by SIGKILL."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass  # not Linux: the forwarded signals still cover kill, Ctrl-C and hang-up


def run_server(host: str, port: int, on_ready: Callable[[str], None]) -> int:
    """Run `bentoml serve` until it exits; returns its exit status (128 + N after signal N).

    The server (an arbiter that starts and stops one process per worker) runs in a session of its own, so
    a terminal's Ctrl-C reaches archcast only. SIGTERM, SIGINT, SIGHUP or SIGQUIT sent to archcast (`kill`,
    a supervisor, `docker stop`, a closed terminal) is forwarded to the arbiter's group, and the arbiter
    stops its workers; if archcast itself is killed, the kernel sends the arbiter SIGTERM.
    """
    pending: list[int] = []
    server: subprocess.Popen | None = None

    def forward(signum, _frame) -> None:
        if server is None:  # arrived while the server was being started: sent once it exists
            pending.append(signum)
            return
        try:
            os.killpg(server.pid, signum)
        except ProcessLookupError:
            pass

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}  # before Popen: no signal is lost
    try:
        server = subprocess.Popen(
            serve_command(host, port), cwd=REPO, start_new_session=True, preexec_fn=_die_with_parent
        )
        for signum in pending:
            forward(signum, None)
        probe = "127.0.0.1" if host in ("0.0.0.0", "") else host
        try:
            wait_ready(server, port, probe)
            on_ready(f"http://{host}:{port}")
        except RuntimeError as exc:
            if server.poll() is None:  # still starting after the readiness timeout: say so, keep waiting
                print(f"archcast: {exc}; still waiting for it", file=sys.stderr)
        status = server.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if server is not None and server.poll() is None:  # archcast itself is failing: take the server down
            forward(signal.SIGTERM, None)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                forward(signal.SIGKILL, None)
    return 128 - status if status < 0 else status
