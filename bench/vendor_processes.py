"""The processes bench_vendors runs beside the node: ``run.py partner-sim`` vendors that can be
killed or stopped and brought back, and small helper servers from ``bench/`` (the mock vendor,
the chain front), each polled over TLS until it answers."""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.common import LOOPBACK, ROOT, free_port, pinned, stop, until


def https(
    port: int,
    ca: Path,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """One request over TLS (a new connection); status and JSON body (None if not JSON)."""
    conn = http.client.HTTPSConnection(
        LOOPBACK, port, context=ssl.create_default_context(cafile=str(ca)), timeout=10
    )
    try:
        payload = None if body is None else json.dumps(body).encode()
        sent = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, body=payload, headers=sent)
        resp = conn.getresponse()
        raw = resp.read()
        try:
            return resp.status, json.loads(raw) if raw else None
        except ValueError:
            return resp.status, None
    finally:
        conn.close()


class Vendor:
    """A ``run.py partner-sim`` process on a fixed port, with its bench devices and latency."""

    def __init__(
        self, name: str, data_dir: Path, port: int, env: dict[str, str], devices: list[str]
    ) -> None:
        self.name = name
        self.data_dir = data_dir
        self.port = port
        self.env = env
        self.devices = devices
        self.ca = data_dir / "pki" / "ca.pem"
        self.cpu: int | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.latency_ms = 0
        self.stopped = False

    @property
    def url(self) -> str:
        return f"https://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        log = (self.data_dir / f"partner-sim-{self.name}.log").open("ab")
        argv = [sys.executable, str(ROOT / "run.py"), "partner-sim", "--port", str(self.port)]
        with log:
            self.process = subprocess.Popen(
                pinned(self.cpu, argv),
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        until(self._answers, within=60, what=f"partner-sim {self.name} answers")
        for device_id in self.devices:
            status, _ = self.control("POST", "/sim/v1/devices", {"device_id": device_id})
            assert status == 201, status
        self.set_latency(self.latency_ms)

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"partner-sim {self.name} exited with {self.process.returncode}")
        try:
            return self.control("GET", "/sim/v1/faults")[0] == 200
        except (OSError, ssl.SSLError):
            return False

    def control(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return https(self.port, self.ca, method, path, body)

    def set_latency(self, ms: int) -> None:
        self.latency_ms = ms
        mode = "slow" if ms else "ok"  # slow with 0 ms means the simulator's default 10 s
        status, _ = self.control("POST", "/sim/v1/faults", {"mode": mode, "latency_ms": ms})
        assert status == 200, status

    def down(self, how: str) -> None:
        """Kill the process (its port refuses connections) or stop it (connections hang)."""
        assert self.process is not None
        if how == "stop":
            self.process.send_signal(signal.SIGSTOP)
            self.stopped = True
        else:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def up(self) -> None:
        """Back after ``down``: continued, or a new process with the same devices and latency."""
        assert self.process is not None
        if self.stopped:
            self.process.send_signal(signal.SIGCONT)
            self.stopped = False
        elif self.process.poll() is not None:
            self.start()

    def close(self) -> None:
        if self.process is not None:
            if self.stopped:
                self.process.send_signal(signal.SIGCONT)
            stop(self.process)


@contextlib.contextmanager
def vendor(vendor: Vendor, cpu: int | None) -> Iterator[Vendor]:
    vendor.cpu = cpu
    try:
        vendor.start()
        yield vendor
    finally:
        vendor.close()


@contextlib.contextmanager
def helper_server(
    script: str, args: list[str], data_dir: Path, cpu: int | None, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``bench/<script> PORT *args`` on a free port, until its ``/healthz`` answers 200."""
    port = free_port()
    argv = [sys.executable, str(ROOT / "bench" / script), str(port), *args]
    process = subprocess.Popen(
        pinned(cpu, argv), cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
    )
    try:
        until(
            functools.partial(_healthz, port, data_dir / "pki" / "ca.pem", process),
            within=30,
            what=f"{script} answers",
        )
        yield process, port
    finally:
        stop(process)


def _healthz(port: int, ca: Path, process: subprocess.Popen[bytes]) -> bool:
    if process.poll() is not None:
        raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
    try:
        return https(port, ca, "GET", "/healthz")[0] == 200
    except (OSError, ssl.SSLError):
        return False


def cert_args(data_dir: Path, name: str) -> list[str]:
    return [str(data_dir / "pki" / name / "cert.pem"), str(data_dir / "pki" / name / "key.pem")]
