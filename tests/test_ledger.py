"""The ledger on SQLite and PostgreSQL: schema and revisions, allocations, usage, policies, profiles."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from jupyter_berth.admission import Admission
from jupyter_berth.errors import ConflictError, NotFoundError, RequestError
from jupyter_berth.ledger import Ledger, LedgerRevisionError, db, default_url, head_revision
from jupyter_berth.ledger.models import Base
from jupyter_berth.policies import PolicySpec, resolve
from jupyter_berth.resources import Resources

GiB = 1024**3
MiB = 1024**2


def reserve(ledger, owner="ada", kind="kernel", subject="k1", cpu=1.0, mem=GiB, groups=("physics",)):
    policy = resolve(owner, groups, PolicySpec.parse({}))
    return Admission(ledger).reserve(
        owner, groups, policy, Resources(cpu=cpu, mem=mem), kind, subject, "berth/python:3.11"
    )


def raw_engine(url):
    return create_engine(db.normalise_url(url))


# -- schema and revisions ----------------------------------------------------------------


def test_fresh_database_is_created_at_head_and_matches_the_models(ledger):
    assert db.current_revision(ledger.engine) == head_revision()
    with ledger.engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert {
        "nodes",
        "allocations",
        "usage_records",
        "usage_samples",
        "policies",
        "profiles",
        "alembic_version",
    } <= tables
    assert diffs == [], f"the migrations and models.py disagree: {diffs}"


def test_unknown_revision_is_refused_with_the_upgrade_command(ledger_url):
    Ledger(url=ledger_url).close()
    engine = raw_engine(ledger_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0000_from_elsewhere'"))
    engine.dispose()
    for auto_upgrade in (False, True):  # an unknown revision is never "upgraded"
        with pytest.raises(LedgerRevisionError) as info:
            Ledger(url=ledger_url, auto_upgrade=auto_upgrade)
        message = info.value.message
        assert f"is at revision 0000_from_elsewhere, this version needs {head_revision()}" in message
        assert "back up the database and run `berth db upgrade`" in message
        assert "password" not in message and ":berth@" not in message  # no password in what admins paste around


def test_database_behind_head_is_refused_then_upgraded_by_the_cli(ledger_url):
    # An empty database is the oldest revision there is.
    with pytest.raises(LedgerRevisionError) as info:
        Ledger(url=ledger_url, auto_upgrade=False)
    assert f"is at revision none (no Berth schema yet), this version needs {head_revision()}" in info.value.message
    assert "`berth db upgrade`" in info.value.message

    cli = [sys.executable, "-m", "jupyter_berth.cli.app", "db"]
    current = subprocess.run([*cli, "current", f"--db-url={ledger_url}"], capture_output=True, text=True, timeout=60)
    assert current.returncode == 1, current.stderr
    assert "run `berth db upgrade`" in current.stdout
    done = subprocess.run([*cli, "upgrade", f"--db-url={ledger_url}"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"upgraded from revision none (empty database) to {head_revision()}" in done.stdout
    again = subprocess.run([*cli, "upgrade", f"--db-url={ledger_url}"], capture_output=True, text=True, timeout=60)
    assert f"already at revision {head_revision()}" in again.stdout
    current = subprocess.run([*cli, "current", f"--db-url={ledger_url}"], capture_output=True, text=True, timeout=60)
    assert current.returncode == 0 and f"revision {head_revision()} (up to date)" in current.stdout

    led = Ledger(url=ledger_url, auto_upgrade=False)  # now at head: accepted without upgrading
    led.close()


def test_tables_without_a_revision_stamp_are_refused(ledger_url):
    Ledger(url=ledger_url).close()
    engine = raw_engine(ledger_url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM alembic_version"))
    engine.dispose()
    with pytest.raises(LedgerRevisionError, match="has Berth tables but no schema revision stamp"):
        Ledger(url=ledger_url)


def test_downgraded_sqlite_ledger_is_upgraded_again_with_a_backup(tmp_path):
    url = f"sqlite:///{tmp_path / 'berth.sqlite'}"
    led = Ledger(url=url)
    led.set_node_capacity("n1", 2, 4 * GiB)
    assert db.upgrade(led.engine) == (head_revision(), head_revision(), None)  # at head: nothing done, no backup
    db.downgrade(led.engine, "0001")  # an older ledger: upgraded with a backup first, data kept
    before, after, backup = db.upgrade(led.engine)
    assert (before, after) == ("0001", head_revision()) and backup and os.path.exists(backup)
    assert [n.name for n in led.nodes()] == ["n1"]
    db.downgrade(led.engine, "base")
    led.close()
    assert db.current_revision(db.make_engine(url)) is None
    led = Ledger(url=url)  # empty again: auto_upgrade recreates it
    assert db.current_revision(led.engine) == head_revision() and led.nodes() == []
    led.close()


def test_job_ids_are_per_owner_and_migration_0010_keeps_every_job(ledger_url):
    """Jobs are keyed by owner and id (0010): two users may hold the same caller-chosen id, each reads
    their own; an owner cannot hold it twice. Back at 0009 an id shared by two owners stays with its
    oldest job and the newer gets a new one; upgraded again, every job is still there."""
    import sqlalchemy.exc

    from jupyter_berth.jobs import store

    def add(owner, job_id, name):
        fields = dict(groups=[], notebook="n.ipynb", job_dir=f"/jobs/{owner}", parameters={}, image="i", resources={})
        return store.add(led, id=job_id, owner=owner, name=name, **fields)

    shared = "0e5f3b1c-1111-4d6e-9a7b-2c3d4e5f6a7b"
    led = Ledger(url=ledger_url)
    try:
        add("ada", shared, "ada's")
        add("bob", shared, "bob's")
        assert store.get(led, shared, "ada").name == "ada's" and store.get(led, shared, "bob").name == "bob's"
        with pytest.raises(NotFoundError, match="of yours"):
            store.get(led, shared, "cy")
        with pytest.raises(sqlalchemy.exc.IntegrityError):
            add("ada", shared, "again")
        db.downgrade(led.engine, "0009_queued_jobs")
        with led.engine.connect() as conn:
            rows = dict(conn.execute(text("SELECT owner, id FROM jobs")).all())
        assert rows["ada"] == shared and rows["bob"] != shared  # the oldest keeps the id
        db.upgrade(led.engine)
        assert store.get(led, shared, "ada").name == "ada's" and store.get(led, rows["bob"], "bob").name == "bob's"
    finally:
        led.close()


def test_sqlite_is_wal_with_busy_timeout_and_foreign_keys(tmp_path, monkeypatch):
    monkeypatch.setenv("BERTH_DATA_DIR", str(tmp_path / "data"))
    assert default_url() == f"sqlite:///{tmp_path / 'data' / 'berth.sqlite'}"
    led = Ledger()  # default URL under $BERTH_DATA_DIR; the directory is created
    try:
        assert os.path.exists(tmp_path / "data" / "berth.sqlite")
        with led.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    finally:
        led.close()


def test_database_urls_are_checked():
    assert db.normalise_url("postgresql://u:p@h/d").drivername == "postgresql+psycopg"
    assert db.normalise_url("postgres://u:p@h/d").drivername == "postgresql+psycopg"
    assert db.describe_url("postgresql+psycopg://u:secret@h/d") == "postgresql+psycopg://u:***@h/d"
    with pytest.raises(RequestError, match="in-memory SQLite ledger cannot be shared"):
        db.normalise_url("sqlite://")
    with pytest.raises(RequestError, match="mysql is not supported"):
        db.normalise_url("mysql://u:p@h/d")
    with pytest.raises(RequestError, match="not a database URL"):
        db.normalise_url("::nonsense::")


# -- nodes and allocations ------------------------------------------------------------------


def test_node_capacity_is_set_and_replaced(ledger):
    ledger.set_node_capacity("n1", 4, 8 * GiB, gpu=[{"uuid": "GPU-1", "memory": 16 * GiB}], labels={"zone": "a"})
    node = ledger.set_node_capacity("n1", 6.5, 12 * GiB, labels={"zone": "b"})
    assert (node.cpu, node.mem, node.gpu, node.labels, node.state) == (6.5, 12 * GiB, (), {"zone": "b"}, "ready")
    assert ledger.set_node_state("n1", "draining").state == "draining"
    assert [n.name for n in ledger.nodes()] == ["n1"] and ledger.get_node("nope") is None
    with pytest.raises(RequestError, match="not a host state"):
        ledger.set_node_state("n1", "asleep")
    with pytest.raises(NotFoundError):
        ledger.set_node_state("nope", "down")
    with pytest.raises(RequestError, match="not a capacity"):
        ledger.set_node_capacity("n2", -1, GiB)


def test_samples_update_the_peak_and_release_writes_one_record(ledger):
    ledger.set_node_capacity("n1", 4, 8 * GiB)
    alloc = reserve(ledger, groups=("physics", "staff"))
    assert alloc.state == "reserved" and alloc.live and alloc.groups == ("physics", "staff")
    running = ledger.mark_running(alloc.id, "c0ffee", image_digest="sha256:abc")
    assert running.state == "running" and running.started_at is not None and running.image_digest == "sha256:abc"

    t0 = datetime.now(timezone.utc)
    for i, (cpu_s, mem) in enumerate([(1.0, 100 * MiB), (2.5, 300 * MiB), (3.0, 200 * MiB)]):
        assert ledger.record_sample(alloc.id, cpu_s, mem, pids=7, at=t0 + timedelta(seconds=i))
    now = ledger.get_allocation(alloc.id)
    assert (now.cpu_seconds, now.mem_bytes, now.mem_peak_bytes) == (3.0, 200 * MiB, 300 * MiB)
    assert [s.mem_bytes for s in ledger.samples(alloc.id)] == [100 * MiB, 300 * MiB, 200 * MiB]

    record = ledger.release(alloc.id, "shutdown", exit_code=0, message="the kernel was stopped")
    assert record is not None
    assert (record.cpu_seconds, record.mem_peak_bytes) == (3.0, 300 * MiB)  # fell back to the samples
    assert (record.owner, record.groups, record.kind, record.subject) == ("ada", ("physics", "staff"), "kernel", "k1")
    assert (record.image_digest, record.node, record.cpu, record.mem, record.end_reason) == (
        "sha256:abc",
        "n1",
        1.0,
        GiB,
        "shutdown",
    )
    assert record.started_at == running.started_at and record.ended_at >= record.started_at

    assert ledger.release(alloc.id, "lost") is None  # idempotent: nothing more written
    assert ledger.record_sample(alloc.id, 9.0, GiB) is False  # a late sample changes nothing
    records = ledger.usage_records()
    assert [r.allocation_id for r in records] == [alloc.id] and records[0].end_reason == "shutdown"
    final = ledger.get_allocation(alloc.id)
    assert (final.state, final.release_reason, final.mem_peak_bytes) == ("released", "shutdown", 300 * MiB)
    assert ledger.live_allocations() == []
    with pytest.raises(ConflictError, match="already released"):
        ledger.mark_running(alloc.id, "c0ffee")
    assert ledger.prune_samples(t0 + timedelta(seconds=1)) == 1
    assert len(ledger.samples(alloc.id)) == 2


def test_concurrent_releases_write_exactly_one_record(ledger):
    ledger.set_node_capacity("n1", 4, 8 * GiB)
    alloc = reserve(ledger)
    results, barrier = [], threading.Barrier(12)

    def release():
        barrier.wait()
        results.append(ledger.release(alloc.id, "culled", cpu_seconds=12.5, mem_peak_bytes=50 * MiB))

    threads = [threading.Thread(target=release) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    written = [r for r in results if r is not None]
    assert len(results) == 12 and len(written) == 1
    assert (written[0].cpu_seconds, written[0].mem_peak_bytes) == (12.5, 50 * MiB)
    assert len(ledger.usage_records()) == 1


def test_a_reservation_that_never_started_is_accounted_from_its_reservation(ledger):
    ledger.set_node_capacity("n1", 4, 8 * GiB)
    alloc = reserve(ledger, kind="server", subject="ada/")
    record = ledger.release(alloc.id, "failed", message="image not found")
    assert record.started_at == alloc.created_at and (record.cpu_seconds, record.mem_peak_bytes) == (0.0, 0)
    assert record.message == "image not found" and record.exit_code is None
    with pytest.raises(NotFoundError):
        ledger.release("no-such-allocation", "shutdown")
    with pytest.raises(RequestError, match="not an end reason"):
        ledger.release(alloc.id, "")


def test_live_allocations_filter_and_usage_sums(ledger):
    ledger.set_node_capacity("a", 8, 16 * GiB)
    k1 = reserve(ledger, owner="ada", subject="k1", cpu=1.5, mem=2 * GiB)
    reserve(ledger, owner="ada", kind="server", subject="ada/", cpu=0.5, mem=GiB)
    reserve(ledger, owner="bob", subject="k2", cpu=2, mem=GiB)
    assert [a.subject for a in ledger.live_allocations(owner="ada")] == ["k1", "ada/"]
    assert [a.subject for a in ledger.live_allocations(kind="kernel")] == ["k1", "k2"]
    assert ledger.live_allocations(node="elsewhere") == []
    usage = ledger.user_usage("ada")
    assert (usage.cpu, usage.mem, usage.kernels, usage.servers) == (2.0, 3 * GiB, 1, 1)
    assert usage.describe() == "1 kernel and 1 server"
    ledger.release(k1.id, "shutdown")
    assert ledger.node_usage()["a"].cpu == 2.5
    assert ledger.get_allocation(k1.id).resources == Resources(cpu=1.5, mem=2 * GiB)


def test_usage_records_by_window_and_owner(ledger):
    ledger.set_node_capacity("n1", 4, 8 * GiB)
    for owner in ("ada", "bob", "ada"):
        ledger.release(reserve(ledger, owner=owner).id, "shutdown")
    now = datetime.now(timezone.utc)
    hour = timedelta(hours=1)
    assert len(ledger.usage_records(since=now - hour, until=now + hour)) == 3
    assert [r.owner for r in ledger.usage_records(owner="ada")] == ["ada", "ada"]
    assert ledger.usage_records(since=now + hour) == []
    assert ledger.usage_records(until=now - hour) == []
    assert len(ledger.usage_records(since=now - hour, until=now + hour, overlapping=True)) == 3


def test_timestamps_come_back_as_aware_utc(ledger):
    ledger.set_node_capacity("n1", 4, 8 * GiB)
    alloc = reserve(ledger)
    assert alloc.created_at.tzinfo is timezone.utc
    cet = timezone(timedelta(hours=1))
    local = datetime(2026, 3, 1, 13, 0, tzinfo=cet)
    ledger.record_sample(alloc.id, 1.0, MiB * 64, at=local)
    ledger.record_sample(alloc.id, 2.0, MiB * 64, at=datetime(2026, 3, 1, 12, 30))  # naive = UTC
    samples = ledger.samples(alloc.id)
    assert [s.at for s in samples] == [
        datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc),
        datetime(2026, 3, 1, 12, 30, tzinfo=timezone.utc),
    ]
    assert ledger.samples(alloc.id, since=datetime(2026, 3, 1, 12, 15, tzinfo=timezone.utc))[0].cpu_seconds == 2.0


# -- policies and profiles ------------------------------------------------------------------


def test_policy_round_trip(ledger):
    assert ledger.get_policies() == (None, {}, {})
    ledger.set_policy("default", None, {"max_cpu": 2, "max_mem": "4G"}, by="admin")
    ledger.set_policy("group", "students", {"total_cpu": 4, "max_kernels": 3}, by="admin")
    ledger.set_policy("user", "ada", {"max_gpu": 0.5, "total_gpu": 1}, by="admin")
    ledger.set_policy("group", "students", {"total_cpu": 6}, by="root")  # replaced, not merged
    default, groups, users = ledger.get_policies()
    assert default == {"max_cpu": 2, "max_mem": "4G"}
    assert groups == {"students": {"total_cpu": 6}} and users == {"ada": {"max_gpu": 0.5, "total_gpu": 1}}
    policy = resolve(
        "ada",
        ["students"],
        PolicySpec.parse(default),
        {g: PolicySpec.parse(s) for g, s in groups.items()},
        {u: PolicySpec.parse(s) for u, s in users.items()},
    )
    assert (policy.max_cpu, policy.total_cpu, policy.max_gpu) == (2, 6, 0.5)

    with pytest.raises(RequestError) as info:
        ledger.set_policy("group", "students", {"max_cpu": "lots"})
    assert info.value.field == "group students.max_cpu"
    with pytest.raises(RequestError, match="not a policy scope"):
        ledger.set_policy("team", "x", {})
    with pytest.raises(RequestError, match="needs the user's name"):
        ledger.set_policy("user", "", {})
    assert ledger.delete_policy("group", "students") is True
    assert ledger.delete_policy("group", "students") is False
    assert ledger.delete_policy("default") is True
    assert ledger.get_policies() == (None, {}, {"ada": {"max_gpu": 0.5, "total_gpu": 1}})


def test_profile_round_trip(ledger):
    assert ledger.get_profile("ada") is None
    ledger.set_profile("ada", {"cpu": 2, "mem": "4G"}, image="berth/python:3.11")
    profile = ledger.set_profile("ada", {"cpu": "0.5"})
    assert (profile.request, profile.image) == ({"cpu": "0.5"}, None)
    assert (
        ledger.get_profile("ada").request == {"cpu": "0.5"}
        and ledger.get_profile("ada").updated_at.tzinfo is timezone.utc
    )
    with pytest.raises(RequestError) as info:
        ledger.set_profile("ada", {"memory": "lots"})
    assert info.value.field == "memory"
    assert ledger.get_profile("ada").request == {"cpu": "0.5"}
    assert ledger.delete_profile("ada") is True and ledger.get_profile("ada") is None
