"""`python -m cli.admin setup-search-attributes`: register leadrelay's custom search
attributes on any Temporal cluster (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE). Safe to repeat."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)

from leadrelay import search_attributes
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cli.admin", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("setup-search-attributes", help="register the custom search attributes")
    parser.parse_args(argv)
    settings = Settings()
    added = asyncio.run(setup_search_attributes(settings))
    where = f"{settings.temporal_address}/{settings.temporal_namespace}"
    print(f"added {', '.join(added)} on {where}" if added else f"all present on {where}")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    # Skip interpreter finalisation: tearing down the Temporal SDK's native runtime while
    # its threads still run has crashed this short-lived process (SIGSEGV) after its work
    # was done.
    os._exit(code)
