"""`make run`: the whole stack on one machine, on embedded defaults.

Starts a persistent Temporal dev server (SQLite under .data/, UI on :8233, one partition
for the amoCRM queue), the amoCRM sandbox when no real account is configured, the worker
and the API; prints where everything is; stops it all on Ctrl-C.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from leadrelay import search_attributes
from leadrelay.settings import Settings

DATA_DIR = Path(".data")
SANDBOX_PORT = 8081
SANDBOX_TOKEN = "sandbox-token"
TEMPORAL_UI_PORT = 8233
BIN = Path(sys.executable).parent


def temporal_dev_server_command(
    host: str,
    port: int,
    db: Path,
    *,
    ui_port: int | None = TEMPORAL_UI_PORT,
    register_search_attributes: bool = True,
) -> list[str]:
    """A persistent dev server with one partition per queue (see the README's rate limit)
    and fairness keys on (see the README's priorities)."""
    command = [
        str(BIN / "temporal"),
        "server",
        "start-dev",
        "--ip", host,
        "--port", str(port),
        "--db-filename", str(db),
        "--sqlite-pragma", "journal_mode=wal",
        "--sqlite-pragma", "synchronous=normal",
        "--dynamic-config-value", "matching.numTaskqueueReadPartitions=1",
        "--dynamic-config-value", "matching.numTaskqueueWritePartitions=1",
        "--dynamic-config-value", "matching.enableFairness=true",
        "--log-level", "warn",
    ]  # fmt: skip
    command += ["--ui-port", str(ui_port)] if ui_port else ["--headless"]
    if register_search_attributes:
        command += search_attributes.dev_server_args()
    return command


def wait_for_port(host: str, port: int, name: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{name} did not come up on {host}:{port} within {timeout:.0f}s")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    DATA_DIR.mkdir(exist_ok=True)
    settings = Settings()
    env = dict(os.environ)
    # Local development: interactive docs on, and a fresh admin token unless one is set.
    env.setdefault("LEADRELAY_API_DOCS", "true")
    env.setdefault("ADMIN_TOKEN", secrets.token_urlsafe(18))
    children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(name: str, command: list[str]) -> None:
        log = (DATA_DIR / f"{name}.log").open("ab")
        # A session of its own: Ctrl-C reaches only this launcher, which stops the
        # children in order (API first, Temporal last).
        process = subprocess.Popen(command, env=env, stdout=log, stderr=log, start_new_session=True)
        children.append((name, process))

    temporal_host, _, temporal_port = settings.temporal_address.rpartition(":")
    try:
        start(
            "temporal",
            temporal_dev_server_command(
                temporal_host, int(temporal_port), DATA_DIR / "temporal.db"
            ),
        )
        wait_for_port(temporal_host, int(temporal_port), "Temporal")
        sandbox_url = None
        if not settings.amocrm_base_url:
            sandbox_url = f"http://127.0.0.1:{SANDBOX_PORT}"
            env.update(AMOCRM_BASE_URL=sandbox_url, AMOCRM_ACCESS_TOKEN=SANDBOX_TOKEN)
            start(
                "sandbox",
                [
                    sys.executable,
                    "-m",
                    "sandbox",
                    "--port",
                    str(SANDBOX_PORT),
                    "--token",
                    SANDBOX_TOKEN,
                ],
            )
            wait_for_port("127.0.0.1", SANDBOX_PORT, "amoCRM sandbox")
        start("worker", [sys.executable, "worker.py"])
        start("api", [sys.executable, "-m", "api"])
        wait_for_port(settings.api_host, settings.api_port, "API")
        print_banner(settings, sandbox_url, env["ADMIN_TOKEN"])
        watch(children)
    except KeyboardInterrupt:
        pass
    finally:
        stop(children)


def print_banner(settings: Settings, sandbox_url: str | None, admin_token: str) -> None:
    api = f"http://{settings.api_host}:{settings.api_port}"
    amocrm = sandbox_url or settings.amocrm_base_url
    lines = [
        "",
        "leadrelay is running (logs in .data/*.log; Ctrl-C stops everything)",
        f"  API            {api}   (docs: {api}/docs)",
        f"  Temporal UI    http://localhost:{TEMPORAL_UI_PORT}",
        f"  amoCRM         {amocrm}" + ("   (sandbox)" if sandbox_url else ""),
    ]
    if sandbox_url:
        lines.append(f"  look inside    curl {sandbox_url}/_sandbox/state")
    lines += [
        "",
        "Submit a test lead:",
        f"  curl -sS -X POST {api}/api/landing/proftest -H 'Content-Type: application/json' \\",
        '    -d \'{"name":"Айгерим","phone":"+7 777 123 45 67","email":"aigerim@example.com"}\'',
        "Then follow it:",
        f"  curl -sS -H 'Authorization: Bearer {admin_token}' {api}/api/leads/+77771234567",
        "",
    ]
    print("\n".join(lines), flush=True)


def watch(children: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
    while True:
        for name, process in children:
            if process.poll() is not None:
                raise SystemExit(f"{name} exited with {process.returncode}; see .data/{name}.log")
        time.sleep(0.5)


def stop(children: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
    for _, process in reversed(children):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for name, process in reversed(children):
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            print(f"{name} did not stop; killing it", file=sys.stderr)
            process.kill()


if __name__ == "__main__":
    main()
