"""The whole leadrelay stack as real processes, for benchmarks and fault drills.

A persistent Temporal dev server (SQLite in WAL mode, one partition for the amoCRM queue),
the amoCRM sandbox, the worker and the API, each on a free 127.0.0.1 port with its data in
a temporary directory, so that nothing here touches `make run` (:7233, :8000, :8081,
`.data/`) or the test suite. Every process can be stopped, killed with SIGKILL and started
again, and its CPU time is read from /proc for per-step CPU shares.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client

from cli.devstack import temporal_dev_server_command, wait_for_port

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
SANDBOX_TOKEN = "bench-token"
WEBHOOK_TOKEN = "bench-hook-secret"
ADMIN_TOKEN = "bench-admin-secret"
BENCH_FORM = "bench"
# A second form, for the fairness phase: a flood on BENCH_FORM must not starve it.
OTHER_FORM = "bench-other"
BENCH_PIPELINE = 10350882
BENCH_STATUS = 81854578
# The reconciliation schedule also calls amoCRM; an interval this long keeps it out of the
# request counts (intervals are aligned to the epoch, so it will not fire during a run).
RECONCILE_EVERY_SECONDS = 10**8
FORMS_TOML = f"""
[forms.{BENCH_FORM}]
pipeline_id = {BENCH_PIPELINE}
status_id = {BENCH_STATUS}
tags = ["bench"]
lead_name = "Bench: {{name}}"

[forms.{OTHER_FORM}]
pipeline_id = {BENCH_PIPELINE}
status_id = {BENCH_STATUS}
tags = ["bench-other"]
lead_name = "Other: {{name}}"
"""
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (from /proc/PID/stat), None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces; the fields after its closing parenthesis do not.
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


class Proc:
    """One child process: started in its own session, logged to a file, restartable."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.command = command
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        if self.alive:
            raise RuntimeError(f"{self.name} is already running")
        with self.log.open("ab") as log:
            log.write(f"\n--- start {self.name} at {time.time():.3f}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.starts += 1

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within `timeout`."""
        if not self.alive:
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()

    def kill9(self) -> None:
        """SIGKILL: no shutdown, nothing finished, like a crash or the OOM killer."""
        if not self.alive:
            return
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=15)

    def cpu_seconds(self) -> float | None:
        return cpu_seconds(self.pid) if self.alive and self.pid else None

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class StackConfig:
    amocrm_rps: float = 5.0
    block_backoff_seconds: float = 300.0
    quiet_window_seconds: float = 1800.0
    ack_deadline_ms: float | None = None  # None: the API's default
    keep_dir: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)


class CpuSampler:
    """CPU share of each named process over an interval: 100 % is one core busy."""

    def __init__(self, procs: dict[str, Proc]) -> None:
        self._procs = procs
        self._start: dict[str, float | None] = {}
        self._t0 = 0.0

    def begin(self) -> None:
        self._t0 = time.monotonic()
        self._start = {name: proc.cpu_seconds() for name, proc in self._procs.items()}
        self._start["bench"] = cpu_seconds(os.getpid())

    def end(self) -> dict[str, float | None]:
        wall = max(time.monotonic() - self._t0, 1e-6)
        now = {name: proc.cpu_seconds() for name, proc in self._procs.items()}
        now["bench"] = cpu_seconds(os.getpid())
        shares: dict[str, float | None] = {}
        for name, after in now.items():
            before = self._start.get(name)
            shares[name] = (
                None
                if before is None or after is None
                else round(100.0 * (after - before) / wall, 1)
            )
        return shares


class BenchStack:
    """Temporal dev server + sandbox + worker + API, as processes; `with BenchStack() as s`."""

    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig()
        self.dir = Path(tempfile.mkdtemp(prefix="leadrelay-bench-"))
        self.temporal_port = free_port()
        self.sandbox_port = free_port()
        self.api_port = free_port()
        self.temporal_address = f"{HOST}:{self.temporal_port}"
        self.sandbox_url = f"http://{HOST}:{self.sandbox_port}"
        self.api_url = f"http://{HOST}:{self.api_port}"
        self.forms_path = self.dir / "forms.toml"
        self.forms_path.write_text(FORMS_TOML, encoding="utf-8")
        self.procs: dict[str, Proc] = {}
        self._extra_workers = 0
        bin_dir = Path(sys.executable).parent
        self.temporal_cli = str(bin_dir / "temporal")

        temporal_cmd = _temporal_command(self.temporal_port, self.dir / "temporal.db")
        self.procs["temporal"] = Proc("temporal", temporal_cmd, self._env(), self._log("temporal"))
        self.procs["sandbox"] = Proc(
            "sandbox",
            [
                sys.executable,
                "-m",
                "sandbox",
                "--host",
                HOST,
                "--port",
                str(self.sandbox_port),
                "--token",
                SANDBOX_TOKEN,
            ],
            self._env(),
            self._log("sandbox"),
        )
        self.procs["worker"] = self._worker_proc("worker")
        self.procs["api"] = Proc(
            "api", [sys.executable, "-m", "api"], self._env(), self._log("api")
        )

    # ----- environment and processes

    def _log(self, name: str) -> Path:
        return self.dir / f"{name}.log"

    def _env(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(
                ("AMOCRM_", "LEADRELAY_", "TEMPORAL_", "API_", "WEBHOOK_", "ADMIN_")
            )
        }
        env.update(
            AMOCRM_BASE_URL=self.sandbox_url,
            AMOCRM_ACCESS_TOKEN=SANDBOX_TOKEN,
            AMOCRM_RPS=str(self.config.amocrm_rps),
            AMOCRM_BLOCK_BACKOFF_SECONDS=str(self.config.block_backoff_seconds),
            TEMPORAL_ADDRESS=self.temporal_address,
            TEMPORAL_NAMESPACE="default",
            API_HOST=HOST,
            API_PORT=str(self.api_port),
            LEADRELAY_FORMS=str(self.forms_path),
            LEADRELAY_QUIET_WINDOW_SECONDS=str(self.config.quiet_window_seconds),
            LEADRELAY_OUTBOX_PATH=str(self.dir / "outbox.sqlite3"),
            WEBHOOK_TOKEN=WEBHOOK_TOKEN,
            ADMIN_TOKEN=ADMIN_TOKEN,
            RECONCILE_EVERY_SECONDS=str(RECONCILE_EVERY_SECONDS),
            PYTHONUNBUFFERED="1",
        )
        if self.config.ack_deadline_ms is not None:
            env["LEADRELAY_ACK_DEADLINE_MS"] = str(self.config.ack_deadline_ms)
        env.update(self.config.extra_env)
        return env

    def _worker_proc(self, name: str) -> Proc:
        # Each worker serves its Prometheus metrics on a port of its own.
        env = self._env() | {"LEADRELAY_WORKER_METRICS_ADDRESS": f"{HOST}:{free_port()}"}
        return Proc(name, [sys.executable, "worker.py"], env, self._log(name))

    def start(self) -> BenchStack:
        try:
            self.start_temporal()
            self.start_sandbox()
            self.start_worker()
            self.start_api()
        except BaseException:
            self.stop()
            raise
        return self

    def start_temporal(self) -> None:
        self.procs["temporal"].start()
        self._wait("temporal", self.temporal_port)

    def start_sandbox(self) -> None:
        self.procs["sandbox"].start()
        self._wait("sandbox", self.sandbox_port)

    def start_worker(self, name: str = "worker") -> None:
        """Starts it and waits until it polls the amoCRM queue (it logs that line)."""
        proc = self.procs[name]
        mark = proc.log.stat().st_size if proc.log.exists() else 0
        proc.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not proc.alive:
                raise RuntimeError(f"{name} exited:\n{proc.tail()}")
            with proc.log.open("rb") as log:
                log.seek(mark)
                if b"worker polling" in log.read():
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{name} did not start polling within 60 s:\n{proc.tail()}")

    def start_api(self) -> None:
        self.procs["api"].start()
        self._wait("api", self.api_port)

    def add_worker(self) -> str:
        """Another worker process on the same queues; all workers are restarted with
        AMOCRM_WORKERS set to the new count, as an operator scaling them would."""
        self._extra_workers += 1
        name = f"worker{self._extra_workers + 1}"
        self._set_worker_count(self._extra_workers + 1)
        self.procs[name] = self._worker_proc(name)
        self.start_worker(name)
        return name

    def remove_worker(self, name: str) -> None:
        self.procs.pop(name).stop()
        self._extra_workers -= 1
        self._set_worker_count(self._extra_workers + 1)

    def _set_worker_count(self, count: int) -> None:
        self.config.extra_env["AMOCRM_WORKERS"] = str(count)
        for name in [n for n in self.procs if n.startswith("worker")]:
            self.procs[name].stop()
            self.procs[name] = self._worker_proc(name)
            self.start_worker(name)

    def restart_api(self, extra_env: dict[str, str] | None = None) -> None:
        """Stop the API and start it again, with `extra_env` on top of the stack's settings."""
        self.procs["api"].stop()
        env = self._env() | (extra_env or {})
        self.procs["api"] = Proc("api", [sys.executable, "-m", "api"], env, self._log("api"))
        self.start_api()

    @property
    def outbox_path(self) -> Path:
        return self.dir / "outbox.sqlite3"

    def restart(self, name: str) -> None:
        self.procs[name].stop()
        {"temporal": self.start_temporal, "sandbox": self.start_sandbox, "api": self.start_api}.get(
            name, lambda: self.start_worker(name)
        )()

    def _wait(self, name: str, port: int) -> None:
        proc = self.procs[name]
        try:
            wait_for_port(HOST, port, name, timeout=60)
        except SystemExit as err:
            raise RuntimeError(f"{err}\n{proc.tail()}") from None
        if not proc.alive:
            raise RuntimeError(f"{name} exited:\n{proc.tail()}")

    def stop(self) -> None:
        """API first, Temporal last, as `make run` does."""
        for name in reversed(list(self.procs)):
            self.procs[name].stop()
        if not self.config.keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> BenchStack:
        # SIGTERM (e.g. a CI timeout) unwinds like Ctrl-C, so `with` still stops the children.
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _raise_interrupt)
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def cpu_sampler(self, names: tuple[str, ...] = ("temporal", "worker", "api", "sandbox")):
        return CpuSampler({name: self.procs[name] for name in names if name in self.procs})

    # ----- clients

    def api_client(
        self, *, max_connections: int = 1000, timeout: float = 30.0
    ) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.api_url,
            timeout=timeout,
            transport=ShardedTransport(max_connections),
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )

    def sandbox_client(self) -> SandboxClient:
        return SandboxClient(self.sandbox_url)

    async def temporal_client(self) -> Client:
        return await Client.connect(self.temporal_address, namespace="default")

    async def healthz(self) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=10) as http:
            return (await http.get(f"{self.api_url}/healthz")).json()


class ShardedTransport(httpx.AsyncBaseTransport):
    """Round-robin over several connection pools, so the generator does not slow itself.

    httpcore's pool rescans all its connections for every idle one, on every request and
    every answer: O(connections²). A stall of a few hundred milliseconds at 100 req/s
    leaves hundreds of connections in one pool, and then the generator itself held requests
    for up to 400 ms before sending them (httpx traces), which the bench counted as
    ack latency. Small pools keep that scan short.
    """

    def __init__(self, max_connections: int, shards: int = 16) -> None:
        per_shard = max(1, max_connections // shards)
        limits = httpx.Limits(max_connections=per_shard, max_keepalive_connections=per_shard)
        self._shards = [httpx.AsyncHTTPTransport(limits=limits) for _ in range(shards)]
        self._next = itertools.cycle(self._shards)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await next(self._next).handle_async_request(request)

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.aclose()


class SandboxClient:
    """The sandbox's control endpoints (no token, no rate limit)."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, timeout=60)

    async def __aenter__(self) -> SandboxClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    async def state(self) -> dict[str, Any]:
        return (await self.http.get("/_sandbox/state")).raise_for_status().json()

    async def stats(self, since: float | None = None) -> dict[str, Any]:
        params = {"since": since} if since is not None else {}
        return (await self.http.get("/_sandbox/stats", params=params)).raise_for_status().json()

    async def requests(self, since: float | None = None) -> list[dict[str, Any]]:
        params = {"since": since} if since is not None else {}
        return (await self.http.get("/_sandbox/requests", params=params)).raise_for_status().json()

    async def faults(self, **faults: Any) -> None:
        (await self.http.post("/_sandbox/faults", json=faults)).raise_for_status()

    async def clear_faults(self) -> None:
        (await self.http.delete("/_sandbox/faults")).raise_for_status()

    async def reset(self) -> None:
        (await self.http.post("/_sandbox/reset")).raise_for_status()


async def count_workflows(client: Client, workflow_type: str) -> int:
    return (await client.count_workflows(f'WorkflowType="{workflow_type}"')).count


async def wait_for_count(
    client: Client, workflow_type: str, expected: int, *, within: float = 120.0
) -> int:
    """Visibility catches up a little after the starts; wait until it shows `expected`."""
    deadline = time.monotonic() + within
    count = -1
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            count = await count_workflows(client, workflow_type)
        if count >= expected:
            return count
        await asyncio.sleep(1.0)
    return count


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _temporal_command(port: int, db: Path) -> list[str]:
    """devstack's dev server command (WAL, one partition), with our port, file and no UI."""
    return temporal_dev_server_command(HOST, port, db, ui_port=None)
