"""Engine events keep the ledger true (issue 20, item 2): a kernel whose container is killed or
removed outside Berth, with no server to report it, is released within 5 s (the issue's bound)
with the right reason; a stop Berth makes itself keeps its own reason; after the event stream
breaks (as when the engine restarts) the service reconnects and releases what it missed.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta, timezone

import docker
import pytest

from .berth_fixtures import berth_service  # noqa: F401 - the fixture

pytestmark = [pytest.mark.docker]

REQUEST = {"cpu": 0.25, "mem": "128M"}
#: The issue's bound for a release after the engine reports the end.
BOUND = 5.0


async def _released_within(service, kernel_id: str, bound: float = BOUND) -> bool:
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if kernel_id not in [a.subject for a in await service.list_kernels("ann")]:
            return True
        await asyncio.sleep(0.1)
    return False


async def _record(service, kernel_id: str):
    since = datetime.now(timezone.utc) - timedelta(minutes=5)
    records = await asyncio.to_thread(service.ledger.usage_records, since=since, owner="ann")
    (record,) = [r for r in records if r.subject == kernel_id]
    return record


async def _start(service) -> tuple[str, str]:
    kernel_id = f"ev-{uuid.uuid4().hex[:8]}"
    launch = await service.start_kernel("ann", kernel_id=kernel_id, request=REQUEST)
    return kernel_id, launch.container_id


async def test_a_killed_kernel_with_no_server_is_released_with_its_exit(berth_service):  # noqa: F811
    service = berth_service
    kernel_id, container_id = await _start(service)
    assert (await service.policy_summary("ann"))["usage"]["kernels"] == 1
    await asyncio.to_thread(lambda: docker.from_env().containers.get(container_id).kill())
    assert await _released_within(service, kernel_id), "still counted 5 s after docker kill"
    record = await _record(service, kernel_id)
    assert (record.end_reason, record.exit_code) == ("exited", 137) and "137" in record.message
    assert (await service.policy_summary("ann"))["usage"]["kernels"] == 0
    assert await service.runtime.inspect(container_id) is None  # the dead container was removed too


async def test_a_removed_kernel_is_released_as_lost_and_a_berth_stop_keeps_its_reason(berth_service):  # noqa: F811
    service = berth_service
    removed, container_id = await _start(service)
    stopped, _ = await _start(service)
    await asyncio.to_thread(lambda: docker.from_env().containers.get(container_id).remove(force=True))
    await service.stop_kernel("ann", stopped)  # Berth's own stop: its die event must not rewrite the reason
    assert await _released_within(service, removed)
    assert (await _record(service, removed)).end_reason == "lost"
    await asyncio.sleep(service._events.grace + 0.5)  # the event handler had its chance
    assert (await _record(service, stopped)).end_reason == "shutdown"


async def test_after_the_stream_breaks_it_reconnects_and_releases_what_it_missed(berth_service):  # noqa: F811
    service = berth_service
    events = service._events
    assert await asyncio.to_thread(events.connected.wait, 10)
    before = events.connections
    missed, missed_container = await _start(service)
    later, later_container = await _start(service)
    client = docker.from_env()
    events.drop_connection()  # as an engine restart breaks it
    await asyncio.to_thread(lambda: client.containers.get(missed_container).kill())  # while nobody listens
    assert await asyncio.to_thread(events.connected.wait, 15) and events.connections > before
    assert await _released_within(service, missed)
    await asyncio.to_thread(lambda: client.containers.get(later_container).kill())  # the new stream works
    assert await _released_within(service, later)
    assert (await _record(service, missed)).end_reason == "exited"


async def test_image_events_drop_the_catalogs_listing_of_engine_images(berth_service):  # noqa: F811
    """While image events are followed the catalog reuses its listing of the engine's images (no listing
    per start), and a tag made behind the service's back drops it: the next listing has the new tag."""
    images = berth_service.images
    events = berth_service._events
    assert events is not None
    deadline = time.monotonic() + 10
    while images.engine_list_ttl < 60 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert images.engine_list_ttl == 60  # following image events
    await images.catalog_view()
    assert images._engine_images is not None  # listed once, then reused
    tag = f"berth-test-events/{uuid.uuid4().hex[:8]}:1"
    client = docker.from_env()
    try:
        await asyncio.to_thread(client.api.tag, "berth/python:3.11", *tag.split(":"))
        deadline = time.monotonic() + 10
        while images._engine_images is not None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert images._engine_images is None  # the tag event dropped the listing
        assert tag in {ref for ref, _ in await images._kernel_images()}  # listed again, with the new tag
    finally:
        await asyncio.to_thread(client.api.remove_image, tag)
        client.close()


async def test_a_container_that_starts_for_a_released_allocation_is_removed_as_a_stray(berth_service):  # noqa: F811
    """A start that loses a race with a stop (or that the engine finishes after Berth gave up on it) leaves a
    running container whose allocation is released: the engine's start event removes it, so the ledger and
    the engine agree again without waiting for a restart's reconcile."""
    service = berth_service
    kernel_id, container_id = await _start(service)
    (alloc,) = [a for a in await service.list_kernels("ann") if a.subject == kernel_id]
    await asyncio.to_thread(service.ledger.release, alloc.id, "failed", message="the start lost a race")
    client = docker.from_env()
    await asyncio.to_thread(lambda: client.containers.get(container_id).restart(timeout=0))  # die, then start
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        running = await asyncio.to_thread(
            client.containers.list, filters={"label": f"io.jupyter.berth.allocation={alloc.id}"}
        )
        if not running:
            break
        await asyncio.sleep(0.1)
    assert not running, "the stray container still runs"
    assert kernel_id not in [a.subject for a in await service.list_kernels("ann")]
