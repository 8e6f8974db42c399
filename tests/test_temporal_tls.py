"""Secured Temporal connections for real: TLS, mTLS and API keys through a TLS proxy.

The proxy (tests/tls_proxy.py) terminates TLS with a trustme CA in front of the session's
dev server. Each test builds its client, workers and API from `Settings` exactly as the
processes do, in a namespace of its own, so a lead that reaches amoCRM went through TLS.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from bench.stack import free_port
from cli.admin import setup_search_attributes
from leadrelay.contact import lead_workflow_id
from leadrelay.settings import Settings
from leadrelay.temporal import connect
from leadrelay.temporal_tls import TemporalTLSError, tls_config
from tests.conftest import TEMPORAL_BIN
from tests.isolated import deployment, register_namespace
from tests.tls_proxy import TLSProxy

NAMESPACE = "leadrelay-tls"
ROOT = Path(__file__).resolve().parent.parent
API_KEY = "tmprl-test-api-key-7f3c"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
async def namespace(temporal_env: WorkflowEnvironment) -> str:
    await register_namespace(temporal_env, NAMESPACE)
    return NAMESPACE


@pytest.fixture
def secured(
    settings: Settings, namespace: str, ca: trustme.CA, tmp_path: Path
) -> Callable[..., Settings]:
    """The session's settings pointed at a proxy, with the CA as PEM text."""

    def make(proxy: TLSProxy, **tls: object) -> Settings:
        return settings.model_copy(
            update={
                "temporal_address": proxy.address,
                "temporal_namespace": namespace,
                "temporal_tls_ca": ca.cert_pem.bytes().decode(),
                "temporal_tls_server_name": "localhost",
                "leadrelay_outbox_path": tmp_path / "outbox.sqlite3",
                # The form must reach Temporal in its request, however busy the machine.
                "leadrelay_ack_deadline_ms": 10_000,
                **tls,
            }
        )

    return make


async def submit_and_wait(settings: Settings, phone: str) -> None:
    """Search attributes, then a form through the API, all on connections from `settings`."""
    await setup_search_attributes(settings)
    async with deployment(settings, create_app(settings)) as running:
        answer = await running.api.post(
            "/api/landing/proftest", json={"name": "TLS", "phone": phone}
        )
        assert answer.status_code == 202, answer.text
        assert answer.json()["delivered_via"] == "temporal"
        state = await running.lead_done(lead_workflow_id(phone))
        assert state.lead_id is not None


def grpc_methods(proxy: TLSProxy) -> set[str]:
    return {request[":path"].rsplit("/", 1)[-1] for request in proxy.requests}


async def test_a_lead_goes_end_to_end_over_tls(
    temporal_env, ca, secured, new_phone: Callable[[], str]
):
    async with TLSProxy(temporal_env.client.service_client.config.target_host, ca) as proxy:
        await submit_and_wait(secured(proxy), new_phone())
    # The API started the workflow and the workers polled through the proxy.
    methods = grpc_methods(proxy)
    assert "SignalWithStartWorkflowExecution" in methods
    assert {"PollWorkflowTaskQueue", "PollActivityTaskQueue"} <= methods


def pem_lines(pem: str) -> list[str]:
    """A PEM's base64 lines: no part of the key or certificate may show, whole or in part."""
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


def assert_no_key_material(logged: str, *pems: str) -> None:
    for pem in pems:
        assert pem not in logged and pem.replace("\n", "\\n") not in logged
        for line in pem_lines(pem):
            assert line not in logged, f"PEM material in the logs: {line[:12]}…"


async def test_mtls_needs_the_client_certificate(
    temporal_env,
    ca,
    secured,
    new_phone: Callable[[], str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
):
    """With the certificate (given as file paths) a lead goes through; without it the
    proxy refuses the handshake. Neither the key nor the certificate is ever logged."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="hpack")  # the proxy's own header tap
    client_cert = ca.issue_cert("leadrelay-worker")
    cert_path, key_path = tmp_path / "client.pem", tmp_path / "client.key"
    client_cert.cert_chain_pems[0].write_to_path(str(cert_path))
    client_cert.private_key_pem.write_to_path(str(key_path))
    upstream = temporal_env.client.service_client.config.target_host
    async with TLSProxy(upstream, ca, require_client_cert=True) as proxy:
        with_cert = secured(
            proxy, temporal_tls_cert=str(cert_path), temporal_tls_key=SecretStr(str(key_path))
        )
        await submit_and_wait(with_cert, new_phone())
        assert "PollActivityTaskQueue" in grpc_methods(proxy)

        seen = len(proxy.requests)
        with pytest.raises(RuntimeError, match="connect") as refused:
            await connect(secured(proxy))
        assert len(proxy.requests) == seen, "no request may pass without a certificate"
    # This run's logs were captured: the workers' SDK and their amoCRM client's requests.
    loggers = {record.name.split(".")[0] for record in caplog.records}
    assert {"temporalio", "httpx"} <= loggers, loggers
    logged = caplog.text + str(refused.value)
    assert_no_key_material(logged, key_path.read_text(), cert_path.read_text())


async def test_a_worker_process_given_pem_text_never_logs_it(
    ca, secured, settings: Settings, tmp_path: Path
):
    """`python worker.py` with TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY as PEM text, logging
    at DEBUG: it polls through the mTLS proxy, and its output holds no key material."""
    client_cert = ca.issue_cert("leadrelay-worker-process")
    cert_pem = client_cert.cert_chain_pems[0].bytes().decode()
    key_pem = client_cert.private_key_pem.bytes().decode()
    upstream = settings.temporal_address
    async with TLSProxy(upstream, ca, require_client_cert=True) as proxy:
        env = process_env(
            secured(
                proxy,
                temporal_tls_cert=cert_pem,
                temporal_tls_key=SecretStr(key_pem),
                leadrelay_log_level="DEBUG",
                leadrelay_worker_metrics_address=f"127.0.0.1:{free_port()}",
            )
        )
        output = await run_until_polling(env, tmp_path)
        assert "PollActivityTaskQueue" in grpc_methods(proxy)
    # Its real log: the start-up line and the SDK's shutdown, as JSON lines.
    assert '"logger": "temporalio.' in output and "worker polling" in output
    assert_no_key_material(output, key_pem, cert_pem)


def process_env(settings: Settings) -> dict[str, str]:
    """The settings as the environment a process reads them from."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONUNBUFFERED": "1"}
    for name, value in settings.model_dump().items():
        if value is not None:
            plain = value.get_secret_value() if isinstance(value, SecretStr) else value
            env[name.upper()] = str(plain)
    return env


async def run_until_polling(env: dict[str, str], cwd: Path) -> str:
    """Runs the worker until it logs that it polls, then stops it; returns all it wrote."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "worker.py"),
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    output = b""
    try:
        async with asyncio.timeout(60):
            while b"worker polling" not in output:
                line = await process.stdout.readline()
                assert line, f"the worker exited: {output.decode(errors='replace')[-2000:]}"
                output += line
    finally:
        process.terminate()
        rest, _ = await asyncio.wait_for(process.communicate(), 30)
    return (output + rest).decode(errors="replace")


async def test_an_api_key_is_sent_as_bearer_metadata_and_never_logged(
    temporal_env, ca, secured, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="hpack")  # the test's own tap decodes the key
    async with TLSProxy(temporal_env.client.service_client.config.target_host, ca) as proxy:
        settings = secured(proxy, temporal_api_key=SecretStr(API_KEY))
        client = await connect(settings)
        await client.count_workflows()
    calls = [
        request
        for request in proxy.requests
        if request[":path"].endswith("/CountWorkflowExecutions")
    ]
    assert calls, "the call went through the proxy"
    assert all(request.get("authorization") == f"Bearer {API_KEY}" for request in calls)
    assert API_KEY not in repr(settings) and API_KEY not in str(settings.model_dump())
    assert API_KEY not in caplog.text


def test_an_api_key_alone_turns_tls_on_with_the_system_cas():
    config = tls_config(Settings(_env_file=None, temporal_api_key="k"))
    assert config is not False and config is not True
    assert config.server_root_ca_cert is None and config.client_cert is None
    assert tls_config(Settings(_env_file=None)) is False


def test_tls_settings_that_cannot_work_name_the_setting_not_the_secret(tmp_path: Path):
    with pytest.raises(TemporalTLSError, match="together"):
        tls_config(Settings(_env_file=None, temporal_tls_cert="-----BEGIN CERTIFICATE-----"))
    missing = str(tmp_path / "secret-name-of-a-key.pem")
    settings = Settings(
        _env_file=None, temporal_tls_cert="-----BEGIN CERTIFICATE-----", temporal_tls_key=missing
    )
    with pytest.raises(TemporalTLSError, match="TEMPORAL_TLS_KEY") as raised:
        tls_config(settings)
    assert missing not in str(raised.value)


def test_pem_text_may_carry_its_line_breaks_as_backslash_n(ca: trustme.CA):
    pem = ca.cert_pem.bytes().decode()
    one_line = pem.replace("\n", "\\n")
    config = tls_config(Settings(_env_file=None, temporal_tls_ca=one_line))
    assert config is not False and config is not True
    assert config.server_root_ca_cert == pem.encode()


async def test_the_temporal_cli_reaches_the_secured_cluster_as_the_readme_says(
    temporal_env, ca, namespace, tmp_path: Path
):
    """The operator's commands (README, Temporal Cloud) work through the same TLS front."""
    ca_path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    upstream = temporal_env.client.service_client.config.target_host
    async with TLSProxy(upstream, ca) as proxy:
        process = await asyncio.create_subprocess_exec(
            str(TEMPORAL_BIN),
            "workflow",
            "list",
            "--address",
            proxy.address,
            "--namespace",
            namespace,
            "--tls-ca-path",
            str(ca_path),
            "--tls-server-name",
            "localhost",
            "--api-key",
            API_KEY,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={"PATH": os.environ.get("PATH", "")},
        )
        _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    calls = [r for r in proxy.requests if r[":path"].endswith("/ListWorkflowExecutions")]
    assert calls and all(r.get("authorization") == f"Bearer {API_KEY}" for r in calls)
