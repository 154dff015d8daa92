"""Child processes of the embedded stack: start, wait until ready, stop, restart.

One class serves the broker, the ClickHouse store, every role and the dashboard,
so each of them is started, awaited and stopped the same way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

log = logging.getLogger(__name__)


class ProcessError(RuntimeError):
    """A child process could not be started or did not become ready."""


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when something already listens on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing is bound to right now (for tests and benchmarks): see :func:`free_ports`."""
    return free_ports(1, host)


def free_ports(count: int, host: str = "") -> int:
    """The first of `count` consecutive ports nothing is bound to right now (a worker per
    role takes ``web_port + offset``). They are taken from below the kernel's ephemeral
    range (32768 and up on Linux), so no outgoing connection grabs one before a server
    binds it: a port the kernel hands out for ``bind(0)`` is ephemeral, and the demo's
    monitor once found ``that + 1`` held by a client socket.

    >>> base = free_ports(3)
    >>> 1024 < base and base + 3 <= 32768
    True
    """
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20_000, 32_768 - count)
        ports = range(base, base + count)
        # Not bound yet is not enough: a test asks for several before starting anything.
        if _HANDED_OUT.isdisjoint(ports) and all(_bindable(port, host) for port in ports):
            _HANDED_OUT.update(ports)
            return base
    raise ProcessError(f"found no {count} consecutive free ports between 20000 and 32767")


_HANDED_OUT: set[int] = set()


def _bindable(port: int, host: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def wait_for(check: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll ``check`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return True
        time.sleep(interval)
    return False


def last_line(path: Path | None) -> str:
    """The last non-empty line a child wrote to its log: usually the reason it died."""
    if path is None or not path.exists():
        return ""
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 8192))
        lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines()]
    lines = [ln for ln in lines if ln]
    return lines[-1] if lines else ""


class ManagedProcess:
    """One child process with a readiness check and a log file.

    >>> import sys
    >>> p = ManagedProcess("sleeper", [sys.executable, "-c", "import time; time.sleep(30)"])
    >>> p.start(timeout=5)
    >>> p.alive
    True
    >>> p.stop()
    >>> p.alive
    False
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        ready: Callable[[], bool] | None = None,
        log_path: Path | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.ready = ready
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.process: subprocess.Popen | None = None
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.process.poll() if self.process else None

    def start(self, timeout: float = 30.0) -> None:
        """Spawn the child and wait until its readiness check passes.

        Raises :class:`ProcessError` with the child's last log line when it exits
        first or is not ready in time (and then leaves nothing running).
        """
        if self.alive:
            return
        out = subprocess.DEVNULL
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            out = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(self.env or {})},
                cwd=self.cwd,
                start_new_session=True,  # Ctrl-C reaches the supervisor only; it stops children
            )
        except OSError as err:
            raise ProcessError(f"{self.name}: cannot run {self.argv[0]}: {err}") from None
        finally:
            if out is not subprocess.DEVNULL:
                out.close()
        if self.ready is None:
            return

        def ready_or_dead() -> bool:
            return not self.alive or bool(self.ready())

        wait_for(ready_or_dead, timeout)
        if not self.alive:
            reason = last_line(self.log_path) or f"exit code {self.returncode}"
            raise ProcessError(f"{self.name} exited while starting: {reason}")
        if not self.ready():
            self.stop()
            where = f" (log: {self.log_path})" if self.log_path else ""
            raise ProcessError(f"{self.name} was not ready after {timeout:.0f} s{where}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds. Safe to call twice."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0f s; killing it", self.name, timeout)
                self.kill()
        self.process.wait()

    def kill(self) -> None:
        """SIGKILL at once: what a crash looks like to everyone else."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> ManagedProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
