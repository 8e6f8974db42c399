"""`check-forms` and the worker's start-up check, against the sandbox account over HTTP."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from activities.fields import FieldCatalogueCache
from leadrelay.forms import FormsFile
from leadrelay.settings import AMOCRM_TASK_QUEUE
from tests.conftest import SANDBOX_TOKEN
from tests.support import Stack
from worker import check_forms_against_account
from workflows.account_check import ACCOUNT_CHECK_WORKFLOW_ID

README = Path(__file__).parents[1] / "README.md"

BAD_FORMS = """
[utm]
utm_source = 434731
utm_term = 999001

[forms.express-course]
pipeline_id = 6344290
status_id = 54435099
stage_by_field = { field = "paymentMethod", stages = { kaspi = 54423922, cash = 54423923 } }
responsible_users = [5001, 5999]

[forms.express-course.lead_fields]
600100 = "paymentMethod"
600199 = "course"

[forms.express-course.contact_fields]
700300 = "city"
264999 = "metadata.language"

[forms.quiz]
pipeline_id = 4242

[[rules]]
name = "sale"
pipeline_id = 10350882
status_id = 54423922
actions = [{ type = "note", text = "x" }]
"""

BAD_FORMS_PROBLEMS = [
    "utm: utm_term → lead field 999001 does not exist",
    "form express-course: pipeline 6344290 has no status 54435099",
    "form express-course: user 5999 does not exist",
    "form express-course: field 600100 (Способ оплаты) has no option 'cash'",
    "form express-course: lead field 600199 (course) does not exist",
    "form express-course: contact field 264999 (metadata.language) does not exist",
    "form quiz: pipeline 4242 does not exist",
    "rule sale: pipeline 10350882 has no status 54423922",
]


def readme_forms_example() -> str:
    """The full example of the README's forms-file section."""
    section = README.read_text(encoding="utf-8").split("### Forms file", 1)[1]
    match = re.search(r"```toml\n(.*?)```", section, re.S)
    assert match is not None
    return match[1]


def check_forms(sandbox_url: str, forms: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AMOCRM_BASE_URL": sandbox_url,
        "AMOCRM_ACCESS_TOKEN": SANDBOX_TOKEN,
        "LEADRELAY_FORMS": str(forms),
    }
    command = [sys.executable, "-m", "cli.admin", "check-forms"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def requests_since(control: httpx.Client, since: float) -> list[str]:
    ledger = control.get("/requests", params={"since": since}).json()
    return [f"{entry['method']} {entry['path']}" for entry in ledger]


def test_the_readme_example_matches_the_seed_account(
    sandbox_url: str, control: httpx.Client, tmp_path: Path
) -> None:
    forms = tmp_path / "forms.toml"
    forms.write_text(readme_forms_example(), encoding="utf-8")
    since = time.time()

    result = check_forms(sandbox_url, forms)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "matches the amoCRM account" in result.stdout
    assert sorted(requests_since(control, since)) == [
        "GET /api/v4/contacts/custom_fields",
        "GET /api/v4/leads/custom_fields",
        "GET /api/v4/leads/pipelines",
        "GET /api/v4/users",
    ]


def test_a_bad_forms_file_lists_everything_the_account_lacks(
    sandbox_url: str, control: httpx.Client, tmp_path: Path
) -> None:
    forms = tmp_path / "forms.toml"
    forms.write_text(BAD_FORMS, encoding="utf-8")
    since = time.time()

    result = check_forms(sandbox_url, forms)

    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.splitlines()[:-1] == BAD_FORMS_PROBLEMS
    assert len(requests_since(control, since)) <= 5


@pytest.fixture
def bad_forms(tmp_path: Path) -> FormsFile:
    forms = tmp_path / "forms.toml"
    forms.write_text(BAD_FORMS, encoding="utf-8")
    return FormsFile(forms)


async def test_the_worker_logs_problems_at_start_and_fills_its_cache(
    clean_sandbox: Stack, bad_forms: FormsFile, caplog: pytest.LogCaptureFixture
) -> None:
    stack = clean_sandbox
    cache = FieldCatalogueCache(ttl_seconds=600)
    since = time.time()

    with caplog.at_level(logging.INFO):
        await check_forms_against_account(stack.temporal, bad_forms, cache)

    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("forms file")]
    assert logged == [f"forms file: {problem}" for problem in BAD_FORMS_PROBLEMS]
    assert cache.knows("leads", [600100, 600199]) and cache.knows("contacts", [700300])
    assert cache.lookup("leads", 600100) is not None
    # Every read was an activity on the rate-limited amoCRM queue, one request each.
    history = await stack.temporal.get_workflow_handle(ACCOUNT_CHECK_WORKFLOW_ID).fetch_history()
    reads = [
        event.activity_task_scheduled_event_attributes
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
    ]
    assert {read.task_queue.name for read in reads} == {AMOCRM_TASK_QUEUE}
    assert len(reads) == len(await stack.sandbox_requests(since)) == 4


async def test_the_worker_starts_even_when_amocrm_cannot_be_read(
    clean_sandbox: Stack, bad_forms: FormsFile, caplog: pytest.LogCaptureFixture
) -> None:
    stack = clean_sandbox
    cache = FieldCatalogueCache(ttl_seconds=600)
    await stack.set_faults(
        fail_next=[{"method": "GET", "path_prefix": "/api/v4/leads/pipelines", "status": 401}]
    )

    await check_forms_against_account(stack.temporal, bad_forms, cache)

    assert "forms file not checked against amoCRM" in caplog.text
    assert not cache.knows("leads", [600100])
