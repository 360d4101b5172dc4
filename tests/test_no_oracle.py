"""No existence oracle (issue 20, item 4): another user's kernel id, folder id or image
operation id is answered exactly like an unknown one, and a start with another user's kernel
id starts the caller's own kernel instead of answering 409 and recording a failed row under
the caller. The embedded service on the real engine (the hub's routes: tests/test_hub_service.py).
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from jupyter_berth.errors import BerthError

from .berth_fixtures import berth_service  # noqa: F401 - the fixture

pytestmark = [pytest.mark.docker]

REQUEST = {"cpu": 0.25, "mem": "128M"}


async def _answer(call) -> tuple[type, int, str]:
    with pytest.raises(BerthError) as e:
        await call
    return type(e.value), e.value.status, e.value.message


async def test_another_users_ids_are_answered_like_unknown_ones_on_every_route(berth_service):  # noqa: F811
    service = berth_service
    theirs = f"k-{uuid.uuid4().hex[:8]}"
    unknown = f"k-{uuid.uuid4().hex[:8]}"
    await service.start_kernel("alice", kernel_id=theirs, request=REQUEST)

    routes = {
        "state": lambda k: service.kernel_state("bob", k),
        "signal": lambda k: service.signal_kernel("bob", k, signal.SIGINT),
        "stop": lambda k: service.stop_kernel("bob", k, now=True),
        "ended": lambda k: service.kernel_ended("bob", k),
        "environment": lambda k: service.kernel_environment("bob", k),
    }
    for name, route in routes.items():
        kind, status, message = await _answer(route(theirs))
        assert (kind, status, message.replace(theirs, "ID")) == (
            *(await _answer(route(unknown)))[:2],
            (await _answer(route(unknown)))[2].replace(unknown, "ID"),
        ), name

    folder = await service.folders.create_folder("alice", name="secret")
    unknown_folder = uuid.uuid4().hex
    for route in (
        lambda f: service.folders.folder_shares("bob", folder=f),
        lambda f: service.folders.share_folder("bob", folder=f, kind="user", name="carol"),
        lambda f: service.folders.folder_mounts("bob", names=[f]),
    ):
        kind, status, message = await _answer(route(folder.folder.id))
        other = await _answer(route(unknown_folder))
        assert (kind, status, message.replace(folder.folder.id, "ID")) == (
            other[0],
            other[1],
            other[2].replace(unknown_folder, "ID"),
        )

    # image operations are an image admin's: bob is refused alike whatever the id
    refusals = set()
    for op_id in ("0" * 12, uuid.uuid4().hex[:12]):
        with pytest.raises(BerthError) as e:
            service.images.versions.image_operation("bob", (), op_id)
        refusals.add((type(e.value), e.value.status, e.value.message))
    assert len(refusals) == 1

    assert (await service.kernel_state("alice", theirs)).running  # nothing above touched hers


async def test_a_start_with_another_users_kernel_id_starts_the_callers_own(berth_service):  # noqa: F811
    service = berth_service
    kernel_id = f"k-{uuid.uuid4().hex[:8]}"
    since = datetime.now(timezone.utc) - timedelta(minutes=1)
    hers = await service.start_kernel("alice", kernel_id=kernel_id, request=REQUEST)
    his = await service.start_kernel("bob", kernel_id=kernel_id, request=REQUEST)  # was: 409, name taken
    assert his.container_id != hers.container_id
    assert [k.owner for k in await service.list_kernels()] in (["alice", "bob"], ["bob", "alice"])
    await service.stop_kernel("bob", kernel_id, now=True)
    assert (await service.kernel_state("alice", kernel_id)).running
    records = await asyncio.to_thread(service.ledger.usage_records, since=since, owner="bob")
    assert [(r.subject, r.end_reason) for r in records] == [(kernel_id, "shutdown")]  # no failed row
