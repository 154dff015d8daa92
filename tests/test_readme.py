"""README.md's ``sh``/``bash``/``python`` blocks, run as written.

Each block is one test, id'd by its section heading and its index there. It runs in
a fresh temporary directory with ``lastmile`` and ``python`` on ``PATH`` running this
checkout, against the session's embedded broker and ClickHouse (tests/conftest.py).

Two markers, on the line right before a fence, steer it:

- ``<!-- readme-test: skip: <reason> -->``: the block cannot run in a test (the
  whole stack, Docker, the network); the reason is required, and shown by ``-ra``.
- ``<!-- readme-test: continues -->``: the block runs in the previous block's
  directory, for a block that uses what an earlier one wrote.

A ``python`` block whose first line is ``# <name>.py`` is that file: it is written
under that name (and run), so a block after it can use it.
"""

from __future__ import annotations

import http.server
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from streams.config import load_settings
from streams.kafka.topics import ensure_topics

README = Path(__file__).resolve().parents[1] / "README.md"
CHECKOUT = README.parent
RUNNABLE = {"sh": "sh", "bash": "sh", "python": "python"}
MARKER = re.compile(r"^<!--\s*readme-test:\s*(?P<body>.*?)\s*-->\s*$")
FENCE = re.compile(r"^```(?P<lang>[\w+-]*)\s*$")
FILE_LINE = re.compile(r"^#\s*(?P<name>[\w.-]+\.py)\s*$")
BLOCK_TIMEOUT_S = 60.0
WEBHOOK_PORT = 9000


@dataclass(frozen=True)
class Block:
    """One fenced block of README.md and the marker before it."""

    heading: str
    index: int
    lang: str
    line: int
    code: str
    marker: str | None

    @property
    def id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.heading.lower()).strip("-")
        return f"{slug}-{self.index}"

    @property
    def skip_reason(self) -> str | None:
        if self.marker is None or not self.marker.startswith("skip"):
            return None
        return self.marker.partition(":")[2].strip()

    @property
    def continues(self) -> bool:
        return self.marker == "continues"


def readme_blocks(text: str) -> list[Block]:
    """Every fenced block of ``text`` in a runnable language, in order.

    >>> blocks = readme_blocks("## A b\\n<!-- readme-test: continues -->\\n```sh\\nls\\n```\\n")
    >>> [(b.id, b.code, b.continues) for b in blocks]
    [('a-b-1', 'ls\\n', True)]
    """
    blocks: list[Block] = []
    heading, counts = "top", {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#") and not line.startswith("#!"):
            heading = line.lstrip("#").strip()
        fence = FENCE.match(line)
        if not fence:
            i += 1
            continue
        start = i
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), len(lines))
        lang = fence["lang"]
        if lang in RUNNABLE:
            before = MARKER.match(lines[start - 1]) if start else None
            counts[heading] = counts.get(heading, 0) + 1
            blocks.append(
                Block(
                    heading=heading,
                    index=counts[heading],
                    lang=RUNNABLE[lang],
                    line=start + 1,
                    code="\n".join(lines[start + 1 : end]) + "\n",
                    marker=before["body"] if before else None,
                )
            )
        i = end + 1
    return blocks


BLOCKS = readme_blocks(README.read_text())


def marker_problems(text: str) -> list[str]:
    """What is wrong with the ``readme-test`` markers of ``text``, one line each.

    >>> marker_problems("<!-- readme-test: skip: -->\\n```sh\\nmake demo\\n```\\n")
    ["README.md:1: marker 'skip:' is neither 'continues' nor 'skip: <reason>'"]
    """
    lines = text.splitlines()
    problems = []
    for number, line in enumerate(lines, start=1):
        if not (marker := MARKER.match(line)):
            continue
        body = marker["body"]
        if body != "continues" and not re.fullmatch(r"skip:\s*\S.*", body):
            problems.append(
                f"README.md:{number}: marker {body!r} is neither 'continues' nor 'skip: <reason>'"
            )
        fence = FENCE.match(lines[number]) if number < len(lines) else None
        if not (fence and fence["lang"] in RUNNABLE):
            problems.append(f"README.md:{number}: marker not right before a sh/bash/python fence")
    blocks = readme_blocks(text)
    if blocks and blocks[0].continues:
        problems.append(f"README.md:{blocks[0].line}: the first block has nothing to continue")
    return problems


def test_every_marker_is_known_and_every_skip_has_a_reason() -> None:
    assert BLOCKS, "no runnable block found in README.md"
    assert marker_problems(README.read_text()) == []


def test_a_marker_away_from_a_fence_or_without_a_reason_is_refused() -> None:
    text = "<!-- readme-test: skip -->\n\n```sh\nls\n```\n<!-- readme-test: continues -->\n"
    assert marker_problems(text) == [
        "README.md:1: marker 'skip' is neither 'continues' nor 'skip: <reason>'",
        "README.md:1: marker not right before a sh/bash/python fence",
        "README.md:6: marker not right before a sh/bash/python fence",
    ]


def _shims(directory: Path) -> Path:
    """``lastmile`` and ``python`` commands that run this checkout's interpreter."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, body in {
        "lastmile": f'exec "{sys.executable}" -m streams.cli.main "$@"\n',
        "python": f'exec "{sys.executable}" "$@"\n',
        "python3": f'exec "{sys.executable}" "$@"\n',
    }.items():
        path = directory / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return directory


class _Hook(http.server.BaseHTTPRequestHandler):
    """Answers every webhook POST with 200, as the reader's own receiver would."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def webhook_receiver() -> Iterator[None]:
    """The receiver ``lastmile alerts test --webhook http://127.0.0.1:9000/hook`` posts to."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", WEBHOOK_PORT), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def readme_env(
    broker, clickhouse, webhook_receiver: None, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """The environment of every block: this checkout, the session's broker and store.

    The README's blocks assume the stack is up, so its topics exist and its tables are
    migrated. They name the default topics (the Python example hard-codes
    ``scoring.requests``), so those are used, on the session broker; the database is
    one of the README's own. One data directory (registry, locks) for the whole README,
    as a reader running the blocks one after the other would have.
    """
    root = tmp_path_factory.mktemp("readme")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LASTMILE_")}
    pythonpath = os.pathsep.join(filter(None, [str(CHECKOUT), env.get("PYTHONPATH")]))
    lastmile = {
        "LASTMILE_KAFKA_BOOTSTRAP": f"127.0.0.1:{broker.port}",
        "LASTMILE_CLICKHOUSE_URL": (
            f"http://127.0.0.1:{clickhouse.port}/readme_{uuid.uuid4().hex[:8]}"
        ),
        "LASTMILE_DATA_DIR": str(root / "data"),
    }
    env.update(
        {
            "PATH": f"{_shims(root / 'bin')}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONPATH": pythonpath,
            **lastmile,
        }
    )
    ensure_topics(load_settings(env=lastmile, toml_path=None))
    migrated = subprocess.run(
        ["lastmile", "db", "migrate"],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
        check=False,
    )
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    return env


@pytest.fixture(scope="module")
def block_dirs() -> dict[int, Path]:
    """The directory each block ran in, by its position: what ``continues`` reuses."""
    return {}


def _run(block: Block, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    if block.lang == "python":
        match = FILE_LINE.match(block.code.splitlines()[0])
        script = cwd / (match["name"] if match else f"readme_block_{block.line}.py")
        script.write_text(block.code)
        command = [sys.executable, script.name]
    else:
        command = ["bash", "-e", "-o", "pipefail", "-c", block.code]
    # A session of its own, so a block that outlives its time is stopped with all it started.
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=BLOCK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        raise subprocess.TimeoutExpired(command, BLOCK_TIMEOUT_S, stdout, stderr) from None
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


XFAIL: dict[str, str] = {}


def _params() -> list[object]:
    params = []
    for position, block in enumerate(BLOCKS):
        marks = []
        if block.skip_reason is not None:
            marks.append(pytest.mark.skip(reason=f"README.md:{block.line}: {block.skip_reason}"))
        if block.id in XFAIL:
            marks.append(pytest.mark.xfail(strict=True, reason=XFAIL[block.id]))
        params.append(pytest.param(position, id=block.id, marks=marks))
    return params


@pytest.mark.parametrize("position", _params())
def test_readme_block(
    position: int,
    readme_env: dict[str, str],
    block_dirs: dict[int, Path],
    tmp_path: Path,
) -> None:
    block = BLOCKS[position]
    cwd = tmp_path
    if block.continues:
        assert position - 1 in block_dirs, (
            f"README.md:{block.line} continues a block that did not run"
        )
        cwd = block_dirs[position - 1]
    block_dirs[position] = cwd
    try:
        result = _run(block, cwd, readme_env)
    except subprocess.TimeoutExpired as timeout:
        pytest.fail(
            f"README.md:{block.line} ({block.id}) still ran after {BLOCK_TIMEOUT_S:.0f} s\n"
            f"--- stdout\n{timeout.stdout}\n--- stderr\n{timeout.stderr}"
        )
    if result.returncode != 0:
        block_dirs.pop(position)
        pytest.fail(
            f"README.md:{block.line} ({block.id}) exited {result.returncode}\n"
            f"--- block\n{block.code}--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
