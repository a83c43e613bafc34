"""Create the automations declared in ``automations.yaml`` on the Prefect server at
``PREFECT_API_URL``, with the notification block they send through.

    python -m dns_lifecycle.admin.alerts [--file automations.yaml]

Run again, it replaces them (same names): the file is the truth. The block
(``CustomWebhookNotificationBlock``, JSON ``{"subject": ..., "body": ...}``) posts to
``DNSL_ALERT_WEBHOOK_URL``; without it the automations are created disabled and the
command says how to enable them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from dns_lifecycle.core.settings import REPO_ROOT

DEFAULT_FILE = REPO_ROOT / "automations.yaml"
WEBHOOK_VARIABLE = "DNSL_ALERT_WEBHOOK_URL"


def load(path: Path) -> list[dict[str, Any]]:
    """The automations of ``path``, as written (each action names its block)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return list(data["automations"])


async def _block_id(name: str, url: str | None) -> Any:
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    # A placeholder address when none is set: the automation is disabled then, and
    # the block shows in the UI where the address goes.
    block = CustomWebhookNotificationBlock(
        name=name,
        url=url or "http://127.0.0.1:9/set-DNSL_ALERT_WEBHOOK_URL",
        json_data={"subject": "{{subject}}", "body": "{{body}}"},
    )
    return await block.save(name, overwrite=True)


async def apply(automations: list[dict[str, Any]], webhook_url: str | None) -> list[str]:
    """Create (or replace) every automation; returns their names."""
    from prefect.client.orchestration import get_client
    from prefect.events.schemas.automations import AutomationCore

    blocks: dict[str, Any] = {}
    names = []
    async with get_client() as client:
        for spec in automations:
            spec = {**spec, "enabled": webhook_url is not None}
            actions = []
            for action in spec.get("actions", []):
                action = dict(action)
                block = action.pop("block", None)
                if block is not None:
                    if block not in blocks:
                        blocks[block] = await _block_id(block, webhook_url)
                    action["block_document_id"] = str(blocks[block])
                actions.append(action)
            automation = AutomationCore.model_validate({**spec, "actions": actions})
            for existing in await client.read_automations_by_name(automation.name):
                await client.delete_automation(existing.id)
            await client.create_automation(automation)
            names.append(automation.name)
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dns_lifecycle.admin.alerts")
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE)
    args = parser.parse_args(argv)
    if not args.file.is_file():
        print(f"error: no automations file at {args.file}; pass --file PATH", file=sys.stderr)
        return 2
    url = os.environ.get(WEBHOOK_VARIABLE) or None
    names = asyncio.run(apply(load(args.file), url))
    state = "enabled" if url else f"disabled (set {WEBHOOK_VARIABLE} to enable them)"
    print(f"automations {', '.join(names)}: {state}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
