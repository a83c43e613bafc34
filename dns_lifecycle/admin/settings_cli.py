"""``dns-lifecycle settings``: the settings in effect, and the settings block.

dns-lifecycle settings show [--json]     each setting, its value (secrets masked), its source
dns-lifecycle settings save-block NAME   write the settings in effect into block document NAME
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from dns_lifecycle.core.errors import InputError
from dns_lifecycle.core.settings import Settings

# A document's name as Prefect takes it: lowercase letters, digits and dashes.
_NAME_CHARACTERS = set("abcdefghijklmnopqrstuvwxyz0123456789-")


def add_settings_commands(sub: Any) -> None:
    """Add the ``settings`` group to the CLI's subcommands ``sub``."""
    group = sub.add_parser("settings", help="the settings in effect and the settings block")
    actions = group.add_subparsers(dest="settings_command", required=True, metavar="ACTION")
    show = actions.add_parser(
        "show",
        help="each setting, its value (secrets masked) and where it came from",
        description="Each setting, its value (secrets masked) and where it came from: "
        "env, block NAME or default.",
    )
    show.add_argument("--json", action="store_true", help="one JSON list of rows")
    show.set_defaults(handler=cmd_settings_show, needs_database=False)
    save = actions.add_parser(
        "save-block",
        help="write the settings in effect into a settings block document",
        description="Register the dns-lifecycle-settings block type with the Prefect API "
        "and write the settings now in effect (environment, an existing document, "
        "defaults) into the block document NAME, replacing what it held. The database "
        "URL and the folders are left empty when they only have their default here, so "
        "that each worker keeps its own.",
    )
    save.add_argument("name", metavar="NAME", help="the block document, e.g. default")
    save.set_defaults(handler=cmd_settings_save_block, needs_database=False)


def cmd_settings_show(args: argparse.Namespace, settings: Settings) -> int:
    from dns_lifecycle.core.settings_block import load_settings, settings_table

    loaded = load_settings()
    rows = settings_table(loaded)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(row["setting"]) for row in rows)
    for row in rows:
        print(f"{row['setting']:<{width}}  {row['source']:<16}  {row['value']}")
    return 0


def cmd_settings_save_block(args: argparse.Namespace, settings: Settings) -> int:
    from prefect.settings import PREFECT_API_URL

    from dns_lifecycle.core.settings_block import save_in_effect

    name = args.name
    if not name or not set(name) <= _NAME_CHARACTERS:
        raise InputError(
            f"block document name {name!r} is not valid: use lowercase letters, digits "
            "and dashes, e.g. default"
        )
    if not PREFECT_API_URL.value():
        raise InputError(
            "no Prefect API to save the block to: set PREFECT_API_URL to your server, e.g. "
            "http://127.0.0.1:4200/api"
        )
    save_in_effect(name)
    print(f"saved the settings in effect into block document {name!r} (dns-lifecycle-settings)")
    return 0
