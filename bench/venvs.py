"""Side virtualenvs: packages that cannot share lastmile's environment (their pins conflict
with its own), each in a virtualenv of its own under ``.lastmile/``, made once from the
package index and reused after.

A side virtualenv is ready when its python exists and the marker file beside it names
exactly the packages it was asked for; the marker is written only once pip succeeded, so an
interrupted install is finished by the next call, and a changed list (a new pin) installs
again into the same virtualenv (pip keeps what already fits, so that is quick).

Used by bench/serve.py (MLServer and KServe's model server) and by the gateway's kserve
client test, whose virtualenv the Makefile makes before the tests run (nothing downloads
while they do):

    python bench/venvs.py kserve-client   # make it if missing
    python bench/venvs.py                 # list the named ones and whether each is ready
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["KSERVE_CLIENT", "NAMED", "SideVenv"]

ROOT = Path(__file__).resolve().parent.parent
HOME = ROOT / ".lastmile"
MARKER = "lastmile-packages.txt"


@dataclass(frozen=True)
class SideVenv:
    """A virtualenv at ``.lastmile/<name>-venv`` holding `packages` (pip requirements).

    >>> venv = SideVenv("example", ("kserve>=0.21,<0.22",), home=Path("/tmp/x"))
    >>> venv.path, venv.python
    (PosixPath('/tmp/x/example-venv'), PosixPath('/tmp/x/example-venv/bin/python'))
    >>> venv.ready()
    False
    """

    name: str
    packages: tuple[str, ...]
    home: Path = HOME

    @property
    def path(self) -> Path:
        return self.home / f"{self.name}-venv"

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def _marker(self) -> Path:
        return self.path / MARKER

    @staticmethod
    def env() -> dict[str, str]:
        """This process's environment for a side virtualenv's processes (pip included):
        without PYTHONPATH, which would put lastmile's checkout before their packages.

        >>> "PYTHONPATH" in SideVenv.env()
        False
        """
        return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}

    def _wanted(self) -> str:
        return "".join(f"{p}\n" for p in self.packages)

    def ready(self) -> bool:
        """True when the virtualenv exists with exactly these packages installed."""
        try:
            return self.python.exists() and self._marker.read_text() == self._wanted()
        except OSError:
            return False

    def make(self, quiet: bool = False) -> Path:
        """Its python, after making the virtualenv and installing the packages if it is not
        ready. Raises :class:`subprocess.CalledProcessError` when venv or pip fails."""
        if self.ready():
            return self.python
        say = (lambda _: None) if quiet else (lambda m: print(m, file=sys.stderr))
        say(f"making {self.path} ({', '.join(self.packages)}): once")
        start = time.monotonic()
        if not self.python.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            venv = [sys.executable, "-m", "venv", str(self.path)]
            subprocess.run(venv, check=True, env=self.env())
        pip = [str(self.python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, *self.packages], check=True, env=self.env())
        self._marker.write_text(self._wanted())
        say(f"made {self.path} in {time.monotonic() - start:.0f} s")
        return self.python


#: kserve's own REST client, for tests/streams/roles/gateway/test_kserve_client.py (kserve
#: pins pandas < 3, lastmile's environment has pandas 3).
KSERVE_CLIENT = SideVenv("kserve-client", ("kserve>=0.21,<0.22",))

#: The side virtualenvs this script makes by name (bench/serve.py's needs this
#: environment's River version, so it makes its own).
NAMED = {v.name: v for v in (KSERVE_CLIENT,)}


def main(names: Sequence[str]) -> int:
    unknown = [n for n in names if n not in NAMED]
    if unknown:
        print(f"unknown side virtualenv {unknown}; known: {sorted(NAMED)}", file=sys.stderr)
        return 2
    if not names:  # `make bench` runs every bench/*.py: only say what there is
        for venv in NAMED.values():
            print(f"  {venv.name}: {venv.path} {'ready' if venv.ready() else 'not made'}")
        return 0
    for name in names:
        NAMED[name].make()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
