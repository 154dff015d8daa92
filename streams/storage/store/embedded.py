"""The store from Python: the command that starts it, ``ping``, and
:class:`EmbeddedStore`, which spawns the process and waits until it answers."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO

from streams.storage.store.errors import StoreError
from streams.storage.store.protocol import PID_HEADER, log

__all__ = ["store_command", "ping", "EmbeddedStore"]


def store_command(data_dir: Path, port: int, host: str = "127.0.0.1") -> list[str]:
    """The argv that runs the store as its own process with this interpreter."""
    return [
        sys.executable,
        "-m",
        "streams.storage.store",
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
        "--host",
        host,
    ]


def _ping_pid(url: str, timeout: float) -> int | None:
    """The pid of the store answering ``/ping`` at ``url`` (0 if not a store), or None."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/ping", timeout=timeout) as response:
            if response.status != 200 or response.read().strip() != b"Ok.":
                return None
            return int(response.headers.get(PID_HEADER) or 0)
    except (OSError, ValueError, urllib.error.URLError):
        return None


def ping(url: str, timeout: float = 1.0) -> bool:
    """True when ``GET {url}/ping`` answers ``Ok.`` (any ClickHouse-compatible server)."""
    return _ping_pid(url, timeout) is not None


class EmbeddedStore:
    """The store as a child process: start it, wait for ``/ping``, stop it.

    >>> import tempfile
    >>> with EmbeddedStore(Path(tempfile.mkdtemp()), 18123) as store:  # doctest: +SKIP
    ...     ping(store.url)
    True
    """

    def __init__(
        self, data_dir: Path, port: int, host: str = "127.0.0.1", log_path: Path | None = None
    ) -> None:
        self.data_dir = Path(data_dir)
        self.port = port
        self.host = host
        self.log_path = Path(log_path) if log_path is not None else None
        self._process: subprocess.Popen[bytes] | None = None
        self._relay: threading.Thread | None = None
        self._tail: list[str] = []
        self._log_offset = 0

    @property
    def url(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 30.0) -> None:
        """Spawn the store and return once it answers ``/ping``.

        Raises :class:`StoreError` with the store's own one-line reason when it exits
        first (data directory locked or unwritable, port taken, ...), and leaves
        nothing running when it is not ready in time.
        """
        if self.alive:
            return
        if _ping_pid(self.url, 0.5) is not None:
            raise StoreError(
                f"cannot listen on {self.host}:{self.port}: port {self.port} is already in use"
            )
        log_file: IO[bytes] | None = None
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            log_file = self.log_path.open("ab")
            self._log_offset = log_file.tell()
        self._tail = []
        try:
            self._process = subprocess.Popen(
                store_command(self.data_dir, self.port, self.host),
                stdin=subprocess.DEVNULL,
                stdout=log_file if log_file is not None else subprocess.DEVNULL,
                stderr=log_file if log_file is not None else subprocess.PIPE,
                start_new_session=True,  # Ctrl-C reaches the parent, which stops the store
            )
        except OSError as err:
            raise StoreError(f"cannot run {sys.executable}: {err}") from None
        finally:
            if log_file is not None:
                log_file.close()
        if self._process.stderr is not None:
            self._relay = threading.Thread(
                target=self._relay_stderr,
                args=(self._process.stderr,),
                name="store-stderr",
                daemon=True,
            )
            self._relay.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise StoreError(self._last_words())
            if _ping_pid(self.url, 0.5) == self._process.pid:
                return
            time.sleep(0.05)
        self.kill()
        raise StoreError(f"the store did not answer {self.url}/ping within {timeout:.0f} s")

    def _relay_stderr(self, stream: IO[bytes]) -> None:
        """Pass the child's stderr on to ours, remembering the last lines for errors."""
        for raw in stream:
            line = raw.decode(errors="replace").rstrip()
            if line:
                self._tail = (self._tail + [line])[-20:]
            with contextlib.suppress(Exception):
                sys.stderr.write(line + "\n")
        stream.close()

    def _last_words(self) -> str:
        code = self._process.returncode if self._process is not None else None
        if self._relay is not None:
            self._relay.join(2.0)
        lines = list(self._tail)
        if self.log_path is not None and self.log_path.exists():
            with self.log_path.open("rb") as f:
                f.seek(self._log_offset)
                lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines()]
        lines = [ln for ln in lines if ln]
        if not lines:
            return f"the store exited with code {code} before answering"
        message = lines[-1]
        return message.removeprefix("lastmile store: ")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (the store closes chDB cleanly), SIGKILL after ``timeout``. Idempotent."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("the store did not stop within %.0f s; killing it", timeout)
                self.kill()
        process.wait()
        if self._relay is not None:
            self._relay.join(2.0)

    def kill(self) -> None:
        """SIGKILL at once: what a crash looks like (for crash tests)."""
        process = self._process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.wait()

    def __enter__(self) -> EmbeddedStore:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
