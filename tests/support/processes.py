"""``run.py`` as a user runs it: separate OS processes, their output captured to files.

``run_cli(...)`` runs a one-shot command (``seed-demo``, ``audit verify``) to its end;
``running(...)`` starts a server (``serve``, ``partner-sim``), waits until its HTTPS URL answers
(trusting the project CA of the data dir) and, whatever happens in the ``async with`` body, stops
it: SIGINT, then SIGKILL after a timeout. When the body fails, the process's captured output is
printed, so pytest shows it next to the failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import ssl
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[2]
RUN_PY = REPO / "run.py"

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
POLL_INTERVAL = 0.05


def cli_env(data_dir: Path, **variables: str) -> dict[str, str]:
    """This process's environment without any ``PROPDEV_*``, plus the data dir and ``variables``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROPDEV_")}
    env["PROPDEV_DATA_DIR"] = str(data_dir)
    env.update(variables)
    return env


def ca_file(data_dir: Path) -> Path:
    return data_dir / "pki" / "ca.pem"


def trusting(ca: Path) -> ssl.SSLContext:
    """A client TLS context that trusts only the project CA in ``ca``."""
    return ssl.create_default_context(cafile=str(ca))


@dataclass(frozen=True, slots=True)
class Finished:
    """A one-shot command that has ended."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return (
            f"run.py {' '.join(self.args)} exited {self.returncode}\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )


async def run_cli(
    args: Sequence[str], env: Mapping[str, str], *, wait: float = 60.0, root: Path = REPO
) -> Finished:
    """Run ``python run.py <args>`` to its end (killed after ``wait`` seconds); ``root``: the
    source tree whose ``run.py`` runs (another release's, see tests/support/release.py)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(root / "run.py"),
        *args,
        cwd=root,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), wait)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
        raise AssertionError(
            f"run.py {' '.join(args)} still running after {wait}s\n"
            f"--- stdout ---\n{out.decode(errors='replace')}\n"
            f"--- stderr ---\n{err.decode(errors='replace')}"
        ) from None
    assert proc.returncode is not None
    return Finished(tuple(args), proc.returncode, out.decode(), err.decode())


class Process:
    """A ``run.py`` server process with its stdout and stderr in files."""

    def __init__(
        self, name: str, args: Sequence[str], proc: asyncio.subprocess.Process, logs: Path
    ) -> None:
        self.name = name
        self.args = tuple(args)
        self.proc = proc
        self.stdout_path = logs / f"{name}.stdout.log"
        self.stderr_path = logs / f"{name}.stderr.log"

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def output(self) -> str:
        """Everything the process has written so far, for a failure message."""
        parts = [f"=== {self.name}: run.py {' '.join(self.args)} (exit {self.returncode}) ==="]
        for label, path in (("stdout", self.stdout_path), ("stderr", self.stderr_path)):
            text = path.read_text(errors="replace") if path.exists() else ""
            parts.append(f"--- {label} ---\n{text}")
        return "\n".join(parts)

    async def wait_until_answers(
        self, url: str, ca: Path, *, within: float = START_TIMEOUT
    ) -> None:
        """Poll ``url`` over HTTPS (trusting ``ca``, once it exists) until it answers 200."""
        deadline = time.monotonic() + within
        last_error = "nothing tried yet"
        while time.monotonic() < deadline:
            if self.proc.returncode is not None:
                raise AssertionError(f"{self.name} exited before answering\n{self.output()}")
            if ca.exists():
                try:
                    connector = aiohttp.TCPConnector(ssl=trusting(ca))
                    async with (
                        aiohttp.ClientSession(connector=connector) as http,
                        http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp,
                    ):
                        if resp.status == 200:
                            return
                        last_error = f"HTTP {resp.status}"
                except (aiohttp.ClientError, OSError, ssl.SSLError, TimeoutError) as exc:
                    last_error = repr(exc)
            await asyncio.sleep(POLL_INTERVAL)
        raise AssertionError(
            f"{self.name}: {url} did not answer within {within}s ({last_error})\n{self.output()}"
        )

    async def stop(self, *, grace: float = STOP_TIMEOUT) -> int:
        """SIGINT (Ctrl-C), then SIGKILL if still running after ``grace`` seconds; the exit code."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(self.proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
                print(f"{self.name} ignored SIGINT for {grace}s and was killed")
        return self.proc.returncode if self.proc.returncode is not None else -1


@contextlib.asynccontextmanager
async def running(
    name: str,
    args: Sequence[str],
    env: Mapping[str, str],
    logs: Path,
    *,
    ready_url: str,
    ca: Path,
    start_timeout: float = START_TIMEOUT,
    stop_timeout: float = STOP_TIMEOUT,
    root: Path = REPO,
) -> AsyncIterator[Process]:
    """Start ``python run.py <args>`` (of the source tree ``root``), yield it once
    ``ready_url`` answers, always stop it.

    A body may call ``stop()`` itself to look at the exit code; leaving the block stops the
    process otherwise. On any failure the process's output is printed.
    """
    logs.mkdir(parents=True, exist_ok=True)
    with (
        (logs / f"{name}.stdout.log").open("wb") as out,
        (logs / f"{name}.stderr.log").open("wb") as err,
    ):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(root / "run.py"),
            *args,
            cwd=root,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
    process = Process(name, args, proc, logs)
    started = False
    try:
        await process.wait_until_answers(ready_url, ca, within=start_timeout)
        started = True
        yield process
    except BaseException:
        await process.stop(grace=stop_timeout)
        if started:  # a failed start already carries the output in its message
            print(process.output())
        raise
    else:
        await process.stop(grace=stop_timeout)
