"""Operator commands.

`setup-search-attributes`: register leadrelay's custom search attributes on any Temporal
cluster (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE). Safe to repeat.

`check-forms [--forms PATH]`: read the amoCRM account's pipelines, field catalogues and users
(at most 5 requests) and print every pipeline, status, field, option label and user of the
forms file (LEADRELAY_FORMS) that the account lacks. Exit 1 if there is any, else 0.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)

from amocrm.account import read_account_facts
from amocrm.client import AmoClient
from amocrm.credentials import token_source
from leadrelay import search_attributes
from leadrelay.forms import FormsConfig
from leadrelay.forms_check import check_forms
from leadrelay.settings import Settings
from leadrelay.temporal import connect


async def setup_search_attributes(settings: Settings) -> list[str]:
    """The attributes this call added; those already there are left alone."""
    client = await connect(settings)
    namespace = settings.temporal_namespace
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    missing = [
        key.name for key in search_attributes.ALL if key.name not in existing.custom_attributes
    ]
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=namespace,
                search_attributes={
                    name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for name in missing
                },
            )
        )
    return missing


async def forms_problems(settings: Settings, forms: Path) -> list[str]:
    config = FormsConfig.load(forms)
    if not settings.amocrm_base_url:
        raise SystemExit("AMOCRM_BASE_URL must be set")
    async with AmoClient(
        settings.amocrm_base_url, token_source(settings), requests_per_second=settings.amocrm_rps
    ) as amo:
        return check_forms(config, await read_account_facts(amo))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cli.admin", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("setup-search-attributes", help="register the custom search attributes")
    check = commands.add_parser("check-forms", help="check the forms file against amoCRM")
    check.add_argument("--forms", type=Path, help="the forms file (default: LEADRELAY_FORMS)")
    args = parser.parse_args(argv)
    settings = Settings()
    if args.command == "check-forms":
        return _check_forms(settings, args.forms or settings.leadrelay_forms)
    added = asyncio.run(setup_search_attributes(settings))
    where = f"{settings.temporal_address}/{settings.temporal_namespace}"
    print(f"added {', '.join(added)} on {where}" if added else f"all present on {where}")
    return 0


def _check_forms(settings: Settings, forms: Path | None) -> int:
    if forms is None:
        print("no forms file: set LEADRELAY_FORMS or pass --forms", file=sys.stderr)
        return 2
    problems = asyncio.run(forms_problems(settings, forms))
    for problem in problems:
        print(problem)
    if problems:
        print(f"{forms}: {len(problems)} problem(s) against {settings.amocrm_base_url}")
        return 1
    print(f"{forms} matches the amoCRM account at {settings.amocrm_base_url}")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    # Skip interpreter finalisation: tearing down the Temporal SDK's native runtime while
    # its threads still run can crash the process (SIGSEGV) after its work is done.
    os._exit(code)
