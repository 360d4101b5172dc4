"""Disk limits per kernel and server: a resource kind of the registry, enforced by the engine where
its storage has quotas, else measured by Berth, which warns and then stops a kernel over its limit.

The measured test runs a real kernel on the shared engine (overlay2 on ext4 here: measured mode).
The enforced tests run an engine of their own (tests/disk_engine.py) on a loop file system with
quotas: XFS mounted with ``pquota`` for overlay2, and btrfs; a kernel without XFS quota support
(``CONFIG_XFS_QUOTA``) skips the first, saying so.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import uuid

import pytest

from jupyter_berth.errors import PolicyError, RequestError
from jupyter_berth.policies import PolicySpec, resolve
from jupyter_berth.resources import MIN_DISK, Resources, kinds_json
from jupyter_berth.runtime.base import ContainerSpec
from jupyter_berth.runtime.disk_quota import DISK_QUOTA, ENFORCED, MEASURED, UNBOUNDED, detect
from jupyter_berth.runtime.hardening import host_config_kwargs

from .image_fixtures import run_code

GIB = 2**30
MIB = 2**20
IMAGE = "berth/python:3.11"


def _spec(**resources) -> ContainerSpec:
    return ContainerSpec(
        name=f"disk-{uuid.uuid4().hex[:8]}",
        image=IMAGE,
        command=["true"],
        labels={},
        resources=Resources.parse({"cpu": 0.5, "mem": "256M", **resources}),
        user="1000:100",
    )


def test_disk_is_asked_for_bounded_by_policy_and_listed():
    r = Resources.parse({"disk": "2G"})
    assert r.disk == 2 * GIB and Resources.parse({"disk_size": "512M"}).disk == 512 * MIB
    assert Resources.parse({}).disk == 10 * GIB  # the registry's default when nothing names it
    assert Resources.from_dict(r.to_dict()) == r and r.describe() == "1 CPU · 1 GiB"  # not in the short label
    with pytest.raises(RequestError, match="ask for at least 64 MiB") as e:
        Resources.parse({"disk": "1M"})
    assert e.value.field == "disk" and MIN_DISK == 64 * MIB
    policy = resolve("ada", [], PolicySpec.parse({"max_disk": "5G", "total_disk": "8G"}))
    assert policy.check(Resources.parse({}), explicit=False).disk == 5 * GIB  # a default is clamped
    with pytest.raises(PolicyError, match="disk: you asked for 6 GiB per kernel but your policy allows at most 5 GiB"):
        policy.check(Resources.parse({"disk": "6G"}))
    listed = {k["name"]: k for k in kinds_json()}["disk"]
    assert (listed["max_limit"], listed["total_limit"], listed["live"]) == ("max_disk", "total_disk", False)


def test_info_says_how_often_a_disk_is_measured():
    """``GET berth/api/info``'s ``disk.interval_s``: at sampling rounds, ``disk_interval`` apart; none when
    sampling is off (then nothing measures, and the sidebar says so)."""
    from jupyter_berth.disk_enforcement import schedule
    from jupyter_berth.usage.manager import UsageTracker

    def tracker(**settings):
        return UsageTracker(**{"disk_interval": 60.0, "sample_interval": 15.0, "disk_grace": 60.0, **settings})

    assert schedule(tracker()) == {"interval_s": 60.0, "grace_s": 60.0}
    assert schedule(tracker(sample_interval=25.0))["interval_s"] == 75.0  # the first round 60 s after the last
    assert schedule(tracker(disk_interval=0.0))["interval_s"] == 15.0  # every round
    assert schedule(tracker(disk_interval=5.0))["interval_s"] == 15.0
    assert schedule(tracker(sample_interval=0.0, disk_grace=30.0)) == {"interval_s": None, "grace_s": 30.0}


def test_admission_stores_the_grant_and_totals_it_against_total_disk(tmp_path):
    from jupyter_berth.admission import Admission
    from jupyter_berth.ledger import Ledger

    ledger = Ledger(None, data_dir=str(tmp_path))
    try:
        ledger.set_node_capacity(ledger_node := "host", 8, 16 * GIB)
        policy = resolve("ada", [], PolicySpec.parse({"total_disk": "5G"}))
        admission = Admission(ledger)
        for subject in ("k1", "k2"):
            request = Resources.parse({"cpu": 1, "mem": "1G", "disk": "2G"})
            admission.reserve("ada", [], policy, request, "kernel", subject, IMAGE, node=ledger_node)
        assert [a.resources.disk for a in ledger.live_allocations(owner="ada")] == [2 * GIB, 2 * GIB]
        assert ledger.user_usage("ada").get("disk") == 4 * GIB
        with pytest.raises(PolicyError, match="would bring your total to 6 GiB, over your total_disk limit of 5 GiB"):
            request = Resources.parse({"cpu": 1, "mem": "1G", "disk": "2G"})
            admission.reserve("ada", [], policy, request, "kernel", "k3", IMAGE, node=ledger_node)
    finally:
        ledger.close()


def test_an_allocation_made_before_migration_0008_reads_the_default_disk(tmp_path):
    from sqlalchemy import text

    from jupyter_berth.admission import Admission
    from jupyter_berth.ledger import Ledger, db

    ledger = Ledger(f"sqlite:///{tmp_path / 'berth.sqlite'}")
    try:
        ledger.set_node_capacity("host", 8, 16 * GIB)
        policy = resolve("ada", [], PolicySpec.parse({}))
        request = Resources.parse({"cpu": 1, "mem": "1G", "disk": "2G"})
        Admission(ledger).reserve("ada", [], policy, request, "kernel", "k1", IMAGE, node="host")
        db.downgrade(ledger.engine, "0006")  # the column goes, the allocation stays
        db.upgrade(ledger.engine)
        with ledger.engine.connect() as conn:
            assert conn.execute(text("SELECT disk FROM allocations")).scalar() is None
        (alloc,) = ledger.live_allocations(owner="ada")
        assert alloc.resources.disk == 10 * GIB and ledger.user_usage("ada").get("disk") == 0  # nothing summed
    finally:
        ledger.close()


def test_the_size_limit_goes_to_the_engine_only_when_it_has_quotas():
    spec = _spec(disk="2G")
    assert "storage_opt" not in host_config_kwargs(spec)  # an engine without quotas would refuse the create
    assert host_config_kwargs(spec, {DISK_QUOTA})["storage_opt"] == {"size": str(2 * GIB)}
    assert UNBOUNDED.mode == "none" and UNBOUNDED.features == frozenset()


def _shared_engine_storage() -> tuple[str, str]:
    import docker

    client = docker.from_env()
    try:
        info = client.api.info()
    finally:
        client.close()
    return info.get("Driver"), dict(info.get("DriverStatus") or []).get("Backing Filesystem")


async def test_the_shared_engine_without_quotas_is_measured_and_says_how_to_enforce():
    import docker

    driver, backing = _shared_engine_storage()
    if driver in ("btrfs", "zfs") or backing == "xfs":
        pytest.skip(f"the shared engine ({driver} on {backing}) may have quotas: measured mode is not what applies")
    client = docker.from_env()
    try:
        mode = detect(client.api)
    finally:
        client.close()
    assert mode.mode == MEASURED and mode.features == frozenset()
    assert f"storage driver {driver} on {backing}" in mode.why
    assert "XFS mounted with project quotas (mount -o pquota" in mode.why and "docs/disk-limits.md" in mode.why
    proc = subprocess.run([sys.executable, "-m", "jupyter_berth", "info"], capture_output=True, text=True, timeout=60)
    assert f"disk limits: measured, because the engine cannot bound a container's size (storage driver {driver}" in (
        proc.stdout
    ), proc.stdout + proc.stderr


async def test_a_kernel_writing_over_its_limit_is_warned_then_stopped_when_measured(tmp_path, caplog):
    from jupyter_berth.runtime.docker import DockerRuntime
    from jupyter_berth.service import BerthService

    from .berth_fixtures import close_test_service, service_config

    data = tmp_path / "data"
    data.mkdir()
    config = service_config(str(data), max_disk="1G")
    config.UsageTracker.disk_interval = 0  # measure at every round (the test calls the rounds)
    config.UsageTracker.disk_grace = 2
    service = BerthService(config=config, runtime=DockerRuntime())
    caplog.set_level("INFO", logger="jupyter_berth")
    await service.start()
    try:
        if (await service.runtime.disk_mode()).mode != MEASURED:
            pytest.skip("the shared engine enforces disk limits itself: nothing to measure")
        await asyncio.sleep(0.1)
        assert any(
            "Berth disk limits: measured, because the engine cannot bound" in r.getMessage() for r in caplog.records
        )
        assert (await service.engine_info())["disk"]["mode"] == MEASURED
        kid = f"disk-{uuid.uuid4().hex[:6]}"
        launch = await service.start_kernel("dora", kernel_id=kid, request={"cpu": 0.5, "mem": "256M", "disk": "64M"})
        (alloc,) = await service.list_kernels("dora")
        assert alloc.resources.disk == 64 * MIB  # the grant, in the ledger
        attrs = await service.runtime.docker("inspect_container", alloc.container_id)
        assert not (attrs["HostConfig"].get("StorageOpt") or {})  # the engine was not asked (it would refuse)
        rules = service.fair.apply_usage_rules
        assert await rules() == []  # a fresh kernel has written next to nothing
        write = "open('/tmp/fill-{n}', 'wb').write(b'x' * {mib} * 2**20); print('ok')"
        assert (await run_code(launch, write.format(n=1, mib=59))).strip() == "ok"
        assert await rules() == [("warned", kid, "disk_near")]  # 90 % of its limit: warned once
        assert await rules() == []
        assert (await run_code(launch, write.format(n=2, mib=41))).strip() == "ok"  # 100 MiB: over
        assert await rules() == [("warned", kid, "disk")]
        assert await service.list_kernels("dora") != []  # the grace: time to delete files
        await asyncio.sleep(2.2)
        assert await rules() == [("stopped", kid, "disk")]
        assert await service.list_kernels("dora") == []
        (record,) = await asyncio.to_thread(service.ledger.usage_records, None, None)
        assert record.end_reason == "disk"
        assert re.match(r"disk: 100(\.\d+)? MiB written, limit 64 MiB, so the kernel was stopped", record.message), (
            record.message
        )
        with pytest.raises(Exception, match=r"is no longer running: disk: 100(\.\d+)? MiB written, limit 64 MiB"):
            await service.kernel_state("dora", kid)
        notices = (await service.fair.my_budget("dora"))["notices"]
        assert [(n["rule"], n["action"]) for n in notices] == [
            ("disk", "stopped"),
            ("disk", "warned"),
            ("disk_near", "warned"),
        ]
        assert "the kernel is stopped in 2 s unless it frees" in notices[1]["message"]
    finally:
        await close_test_service(service)


FILL = """
import errno, os
mib = b'x' * 2**20
n = 0
try:
    with open('/tmp/fill', 'wb') as f:
        for n in range(1, 201):
            f.write(mib)
            f.flush()
            os.fsync(f.fileno())
            if n == 32:
                print('wrote 32 MiB', flush=True)
    print('no error after', n, 'MiB', flush=True)
except OSError as e:
    print('refused at', n, 'MiB:', errno.errorcode.get(e.errno, e.errno), flush=True)
"""


@pytest.fixture(params=["xfs", "btrfs"])
def quota_engine(request):
    """An engine of this test's own on a loop file system with quotas (tests/disk_engine.py)."""
    from .disk_engine import FILESYSTEMS, EngineDidNotStart, QuotaEngine, unsupported

    fs = request.param
    why = unsupported(fs)
    if why:
        pytest.skip(f"{fs}: {why}")
    engine = QuotaEngine(fs)
    try:
        try:
            engine.start()
        except EngineDidNotStart as e:
            if "MOUNT FAILED" in str(e):
                line = next(x for x in str(e).splitlines() if "MOUNT FAILED" in x)
                pytest.skip(f"{fs} with quotas cannot be mounted on this kernel: {line}")
            raise
        engine.load_image(IMAGE)
        engine.driver = FILESYSTEMS[fs][2]
        yield engine
    finally:
        engine.close()


async def test_an_engine_with_quotas_enforces_the_limit_a_write_over_it_fails(quota_engine):
    from jupyter_berth.runtime.docker import DockerRuntime

    runtime = DockerRuntime(client_factory=quota_engine.client, read_cgroups=False, address=quota_engine.url)
    try:
        mode = await runtime.disk_mode()
        assert mode.mode == ENFORCED and mode.driver == quota_engine.driver, mode
        assert mode.features == frozenset({DISK_QUOTA})
        spec = _spec(disk="64M")
        spec = ContainerSpec(**{**spec.__dict__, "command": ["python", "-c", FILL]})
        info = await runtime.run(spec)
        done = await runtime.wait(info.id, timeout=180)
        out = await runtime.logs(info.id, tail=None)
        attrs = await runtime.docker("inspect_container", info.id)
        size = int(attrs["HostConfig"]["StorageOpt"]["size"])
        if mode.image_counted:  # btrfs counts the image's files: Berth adds the image's size
            image_size = (await runtime.docker("inspect_image", IMAGE))["Size"]
            assert size == 64 * MIB + image_size
        else:
            assert size == 64 * MIB
        assert done.exit_code == 0, out
        assert "wrote 32 MiB" in out, out  # under the limit: written
        refused = re.search(r"refused at (\d+) MiB: (ENOSPC|EDQUOT)", out)
        assert refused, out  # over it: the write fails in the container (XFS: ENOSPC, btrfs: EDQUOT)
        assert 33 <= int(refused.group(1)) <= 66, out
        await runtime.remove(info.id)
    finally:
        runtime.close()


async def test_a_server_over_its_limit_is_stopped_and_its_next_start_says_why_when_measured(tmp_path):
    from jupyter_berth.runtime.docker import DockerRuntime
    from jupyter_berth.servers import ServerContainer
    from jupyter_berth.service import BerthService

    from .berth_fixtures import close_test_service, service_config

    data = tmp_path / "data"
    data.mkdir()
    config = service_config(str(data))
    config.UsageTracker.disk_interval = 0
    config.UsageTracker.disk_grace = 1
    service = BerthService(config=config, runtime=DockerRuntime())
    await service.start()
    try:
        if (await service.runtime.disk_mode()).mode != MEASURED:
            pytest.skip("the shared engine enforces disk limits itself: nothing to measure")
        user, subject = "erin", f"erin/{uuid.uuid4().hex[:4]}"
        resources = Resources.parse({"cpu": 0.5, "mem": "256M", "disk": "64M"})
        alloc = await service.reserve_server(
            user, policy=await service.policy_for(user), subject=subject, resources=resources, image=IMAGE
        )
        write = (
            "import time; open('/tmp/fill', 'wb').write(b'x' * 80 * 2**20); print('ok', flush=True); time.sleep(600)"
        )
        container = ServerContainer(
            name=service.server_container_name(user, subject), image=IMAGE, command=["python", "-c", write], env={}
        )
        info = await service.start_server(user, (), alloc, container, await service.server_network(user))
        for _ in range(100):  # until the server has written it
            if "ok" in await service.runtime.logs(info.id):
                break
            await asyncio.sleep(0.2)
        assert await service.fair.apply_usage_rules() == [("warned", subject, "disk")]
        await asyncio.sleep(1.2)
        assert await service.fair.apply_usage_rules() == [("stopped", subject, "disk")]
        assert await service.runtime.inspect(info.id) is None  # stopped and removed
        assert await service.live_server_allocation(alloc.id) is None
        notice = await service.server_notice(user, subject)
        assert re.search(
            r"was stopped at \d\d:\d\d UTC: disk: 80(\.\d+)? MiB written, limit 64 MiB, so the server", notice
        )
    finally:
        await close_test_service(service)
