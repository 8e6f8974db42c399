"""`python -m cli.replay HISTORY.json...`: replay exported histories against the
current workflow code, before a deploy, and say plainly which ones would break.

Export a history with `temporal workflow show -w WORKFLOW_ID --output json > h.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from leadrelay.payloads import DATA_CONVERTER
from workflows.catalog import WORKFLOWS
from workflows.runner import workflow_runner


def load_history(path: Path) -> WorkflowHistory:
    text = path.read_text(encoding="utf-8")
    events = json.loads(text).get("events") or [{}]
    started = events[0].get("workflowExecutionStartedEventAttributes") or {}
    workflow_id = started.get("workflowId") or path.stem
    return WorkflowHistory.from_json(workflow_id, text)


async def replay(paths: list[Path]) -> int:
    """How many histories failed to replay; each outcome is printed."""
    replayer = Replayer(
        workflows=WORKFLOWS, workflow_runner=workflow_runner(), data_converter=DATA_CONVERTER
    )
    failures = 0
    for path in paths:
        history = load_history(path)
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        if result.replay_failure is None:
            print(f"ok      {path}")
            continue
        failures += 1
        kind = type(result.replay_failure).__name__
        print(f"BROKEN  {path}: {kind}: {result.replay_failure}")
        if "nondetermin" in str(result.replay_failure).lower():
            print("        the current code would not continue this workflow; guard the change")
            print("        with workflow.patched(...) or deploy it under a new workflow version")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cli.replay", description=__doc__)
    parser.add_argument("histories", nargs="+", type=Path, help="exported history JSON files")
    failures = asyncio.run(replay(parser.parse_args(argv).histories))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
