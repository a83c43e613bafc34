"""The data commands of ``dns-lifecycle``: ``db upgrade``, ``import``, ``export``,
``seed``, ``clusters load-zones`` and ``preview-emails``."""

from __future__ import annotations

import sys
from pathlib import Path

from dns_lifecycle.admin.cli_support import (
    Progress,
    _counts,
    _output_file,
    _session,
    counted,
)
from dns_lifecycle.core.settings import Settings


def cmd_db_upgrade(args, settings: Settings) -> int:
    from dns_lifecycle.core.db import safe_url, upgrade

    upgrade(settings, args.revision)
    print(f"database at revision {args.revision}: {safe_url(settings.database_url)}")
    return 0


def cmd_import(args, settings: Settings) -> int:
    from dns_lifecycle.admin.inventory import import_inventory, read_inventory_file
    from flows.common import wall_clock

    doc = read_inventory_file(Path(args.file))
    with _session(settings) as session:
        counts = import_inventory(
            doc, session, now=wall_clock(), grace_days=settings.grace_days, source=args.file
        )
        session.commit()
    removed = counts.pop("domains_removed", 0)  # re-imported instances that dropped domains
    print(
        "imported "
        + _counts(counts)
        + (f"; {counted(removed, 'domain')} removed" if removed else "")
    )
    return 0


def cmd_export(args, settings: Settings) -> int:
    from dns_lifecycle.admin.inventory import write_state
    from dns_lifecycle.store.queries import table_counts

    with _session(settings) as session:
        if args.output is not None:
            with _output_file(args.output) as out:
                counts = write_state(session, out)
            print(f"wrote {args.output}: " + _counts(counts), file=sys.stderr)
        elif args.json:
            write_state(session, sys.stdout)
            sys.stdout.write("\n")
        else:
            print(_counts(table_counts(session)))
            print("(--json prints the whole state; --output FILE writes it to a file)")
    return 0


def cmd_seed(args, settings: Settings) -> int:
    from dns_lifecycle.admin.seed import seed_fleet
    from dns_lifecycle.core.db import Database
    from flows.common import resolve_as_of, wall_clock

    as_of = resolve_as_of(args.as_of, wall_clock)
    db = Database(settings)
    progress = Progress("seeding instances")
    try:
        counts = seed_fleet(db, args.instances, seed=args.seed, as_of=as_of, progress=progress)
    finally:
        progress.close()
        db.dispose()
    print("seeded " + _counts(counts))
    return 0


def cmd_clusters_load_zones(args, settings: Settings) -> int:
    from dns_lifecycle.admin.load_zones import load_zones
    from dns_lifecycle.core.db import Database

    db = Database(settings)
    try:
        loaded = load_zones(settings, db, args.cluster)
    finally:
        db.dispose()
    print(
        f"cluster {args.cluster}: {loaded.created} zone(s) created with {loaded.records} "
        f"record(s); {loaded.present} already there, left as they are"
    )
    return 0


def cmd_preview(args, settings: Settings) -> int:
    from dns_lifecycle.admin.preview import write_gallery
    from dns_lifecycle.channels.render import Renderer

    index = write_gallery(Renderer.for_settings(settings), Path(args.dir))
    print(f"open {index}")
    if settings.console_url is None:
        print(
            "DNSL_CONSOLE_URL is not set: the notices carry no console link "
            "(set it to see the buttons and links)",
            file=sys.stderr,
        )
    return 0
