"""Turns (core.turns): one release at a time across runs, let go of however the holder
ends; and the release step leaving the work to a run that holds the turn."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

from dns_lifecycle.core.turns import Turn, taking
from dns_lifecycle.lifecycle.sharding import Shard
from flows.common import open_run
from flows.release import release_due
from models import Instance
from tests.test_expiry_release import RELEASE, _expired_instance

ROOT = Path(__file__).resolve().parents[1]
RELEASE_TURN = [Turn("release")]


def test_a_turn_held_is_refused_to_another_holder_until_let_go(db):
    with taking(db, RELEASE_TURN) as first:
        assert first
        with taking(db, RELEASE_TURN) as second:
            assert not second
    with taking(db, RELEASE_TURN) as again:
        assert again


def test_shards_share_the_release_turn_and_each_has_its_own(db):
    shard = [Turn("release", shared=True), Turn("release-0-of-2")]
    other = [Turn("release", shared=True), Turn("release-1-of-2")]
    with taking(db, shard) as one, taking(db, other) as two:
        assert one and two
        with taking(db, shard) as same_shard, taking(db, RELEASE_TURN) as whole:
            assert not same_shard and not whole
    with taking(db, RELEASE_TURN) as whole, taking(db, shard) as during_whole:
        assert whole and not during_whole


def test_a_turn_of_a_process_killed_with_sigkill_is_free_at_once(db, settings):
    """The server (PostgreSQL) or the kernel (SQLite's flock) lets go of it: a rerun
    after kill -9 need not wait for anything to expire."""
    holder = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from dns_lifecycle.core.db import Database
        from dns_lifecycle.core.settings import Settings
        from dns_lifecycle.core.turns import Turn, taking
        db = Database(Settings(database_url={settings.database_url!r}))
        with taking(db, [Turn("release")]) as ours:
            print("held" if ours else "refused", flush=True)
            time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with taking(db, RELEASE_TURN) as during:
            assert not during
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    with taking(db, RELEASE_TURN) as after:
        assert after


def test_a_release_while_another_run_holds_the_turn_leaves_the_release_to_it(db, settings):
    """The second of two overlapping runs releases nothing and says so; the instance is
    released by a run after the holder let go."""
    _expired_instance(db)
    as_of = RELEASE + timedelta(minutes=1)
    with taking(db, RELEASE_TURN) as holder:
        assert holder
        with open_run(as_of, False, None, settings=settings) as ctx:
            report = release_due(ctx)
    assert report.counts.get("release_left_to_another_run") == 1
    assert any("another run is releasing now" in note for note in report.notes)
    with db.session() as s:
        assert s.get(Instance, "inst-1").state == "expired"
    with open_run(as_of, False, None, settings=settings) as ctx:
        report = release_due(ctx)
    assert "release_left_to_another_run" not in report.counts
    with db.session() as s:
        assert s.get(Instance, "inst-1").state == "released"


def test_a_shard_releases_beside_another_shard_of_its_split_run(db, settings):
    _expired_instance(db)
    as_of = RELEASE + timedelta(minutes=1)
    mine = Shard(0, 1)
    with taking(db, [Turn("release", shared=True), Turn("release-1-of-2")]) as other:
        assert other
        with open_run(as_of, False, None, settings=settings) as ctx:
            ctx.shard = mine
            report = release_due(ctx)
    assert "release_left_to_another_run" not in report.counts
    with db.session() as s:
        assert s.get(Instance, "inst-1").state == "released"
