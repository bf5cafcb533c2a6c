"""A private PostgreSQL server (initdb into a temporary directory, its own port) that a test
may stop and start at will without disturbing the machine's shared server on 5432.

As root the server's binaries run as the ``postgres`` user (``runuser``), in a directory that
user owns. ``private_postgres()`` always stops the server and removes its directory, whatever
happens in its body.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import free_port


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    assert pg_ctl is not None, "PostgreSQL's server binaries (pg_ctl, initdb) are needed"
    return Path(pg_ctl).parent


@dataclass(frozen=True)
class PrivatePostgres:
    """A running private server; ``url`` ends with ``/`` (append a database name)."""

    port: int
    data: Path
    bin_dir: Path
    as_postgres: bool

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/"

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bin_dir / tool), *args]
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, f"{tool} exited {done.returncode}: {done.stderr}{done.stdout}"

    def start(self) -> None:
        """Start the server and wait until it accepts connections (``pg_ctl -w``)."""
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data / "db"),
            "-l", str(self.data / "server.log"), "-o", options,
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` ends every session at once (connections are cut)."""
        self._run("pg_ctl", "stop", "-w", "-t", "60", "-m", mode, "-D", str(self.data / "db"))

    def running(self) -> bool:
        return (self.data / "db" / "postmaster.pid").exists()

    def log(self) -> str:
        path = self.data / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """initdb a fresh cluster (trust auth), start it on a free port, always stop and remove it."""
    as_postgres = os.geteuid() == 0
    data = Path(tempfile.mkdtemp(prefix="propdev-pg-"))
    if as_postgres:
        shutil.chown(data, user="postgres", group="postgres")
    server = PrivatePostgres(free_port(), data, _bin_dir(), as_postgres)
    try:
        server._run(
            "initdb", "-D", str(data / "db"), "-U", "postgres", "--auth=trust", "-E", "UTF8",
            "--no-sync",
        )  # fmt: skip
        server.start()
        yield server
    finally:
        try:
            if server.running():
                server.stop("immediate")
        except AssertionError:
            _kill_postmaster(data / "db" / "postmaster.pid")
        finally:
            shutil.rmtree(data, ignore_errors=True)


def _kill_postmaster(pid_file: Path) -> None:
    """The last resort when ``pg_ctl stop`` failed: SIGKILL the postmaster named in its pid file."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        os.kill(int(pid_file.read_text().splitlines()[0]), signal.SIGKILL)
