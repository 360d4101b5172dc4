"""BerthSpawner's options pipeline and queue, without a hub: form → options → validation → admission.

The form and validation are pure functions (jupyter_berth.hub.spawn_form); the queue is
tested against a real ledger (SQLite) and real admission, so "the host is full" is what
the ledger says, not a stand-in.
"""

from __future__ import annotations

import asyncio
import html.parser
import re

import pytest

from jupyter_berth.admission import Admission
from jupyter_berth.errors import CapacityError, PolicyError, RequestError
from jupyter_berth.hub.spawn_form import (
    FolderChoice,
    FormContext,
    ImageChoice,
    options_from_form,
    render_form,
    resolve_options,
)
from jupyter_berth.hub.spawn_queue import QueueTimeout, SpawnQueue, Ticket
from jupyter_berth.ledger import Ledger
from jupyter_berth.policies import PolicySpec, resolve
from jupyter_berth.resources import Resources

GIB = 2**30
IMAGE = "berth/singleuser:3.11"


def context(**policy) -> FormContext:
    spec = PolicySpec.parse({"max_cpu": 2, "max_mem": "4G", "max_gpu": 0, **policy})
    group = PolicySpec.parse({"max_cpu": 1, "max_mem": "2G"})
    eff = resolve("alice", ["class-a"], spec, {"class-a": group})
    return FormContext(
        policy=eff,
        images=[ImageChoice(IMAGE, "JupyterLab 4"), ImageChoice("berth/singleuser:old", "")],
        default_image=IMAGE,
        defaults=Resources.parse({"cpu": 0.5, "mem": "1G"}),
        remaining={"cpu": 1.5, "mem": 3 * GIB, "gpu": None},
        folders=[FolderChoice("@class-a/course", "course", "ro"), FolderChoice("alice/data", "data")],
    )


# ---- form → user_options --------------------------------------------------------------------
def test_form_data_becomes_user_options():
    formdata = {
        "image": [IMAGE],
        "cpu": ["0.75"],
        "mem": ["1.5"],
        "gpu": [""],
        "folders": ["@class-a/course", "alice/data"],
        "_xsrf": ["2|token"],
    }  # a form's own field is not a server option
    assert options_from_form(formdata) == {
        "image": IMAGE,
        "cpu": "0.75",
        "mem": "1.5G",
        "folders": ["@class-a/course", "alice/data"],
    }
    options = resolve_options(options_from_form(formdata), context())
    assert options.resources.cpu == 0.75 and options.resources.mem == int(1.5 * GIB)
    assert options.folders == ("@class-a/course", "alice/data") and options.image == IMAGE


def test_json_user_options_and_defaults():
    ctx = context()
    assert resolve_options({}, ctx).resources == Resources.parse({"cpu": 0.5, "mem": "1G"})
    assert resolve_options({}, ctx).image == IMAGE
    opts = resolve_options({"cpu": 0.5, "memory": "512M", "folders": "data"}, ctx)
    assert (opts.resources.cpu, opts.resources.mem, opts.folders) == (0.5, 512 * 2**20, ("data",))
    assert opts.to_json()["mem"] == "512 MiB"


def test_default_over_a_limit_is_clamped_but_an_explicit_ask_is_refused():
    ctx = context()
    big_default = FormContext(**{**ctx.__dict__, "defaults": Resources.parse({"cpu": 4, "mem": "8G"})})
    clamped = resolve_options({}, big_default).resources
    assert (clamped.cpu, clamped.mem) == (1, 2 * GIB)  # the group's limits
    with pytest.raises(PolicyError) as e:
        resolve_options({"cpu": 4}, big_default)
    assert e.value.limit == "max_cpu"


@pytest.mark.parametrize(
    "options, field, words",
    [
        ({"cpu": "lots"}, "cpu", "cpu"),
        ({"mem": "-1G"}, "mem", "mem"),
        ({"cpu": True}, "cpu", "cores"),
        ({"colour": "blue"}, "colour", "unknown server option"),
        ({"image": "ubuntu:latest"}, "image", "not offered"),
        ({"folders": ["someone-else/secret"]}, "folders", "not a folder you can mount"),
        ({"folders": {"a": 1}}, "folders", "list of folder names"),
    ],
)
def test_malformed_options_name_the_field(options, field, words):
    with pytest.raises(RequestError) as e:
        resolve_options(options, context())
    assert e.value.field == field
    assert words in e.value.message


@pytest.mark.parametrize(
    "options, limit, words",
    [
        (
            {"cpu": 1.5},
            "max_cpu",
            "you asked for 1.5 CPU for your server but your policy allows at most 1 CPU (0.5 CPU over "
            "the max_cpu limit, set by group class-a)",
        ),
        ({"mem": "3G"}, "max_mem", "at most 2 GiB"),
        ({"gpu": 0.25}, "max_gpu", "allows no GPU for a server (max_gpu is 0"),
    ],
)
def test_over_policy_names_the_limit_its_value_and_the_excess(options, limit, words):
    with pytest.raises(PolicyError) as e:
        resolve_options(options, context())
    assert e.value.limit == limit
    assert words in e.value.message


def test_image_outside_allowed_images_is_refused_by_policy():
    ctx = context(allowed_images=["berth/singleuser:3.11"])
    with pytest.raises(PolicyError) as e:
        resolve_options({"image": "berth/singleuser:old"}, ctx)
    assert e.value.limit == "allowed_images"


class _Fields(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.inputs = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("input", "select"):
            self.inputs.setdefault(a["name"], []).append(a)


def test_form_shows_each_field_with_its_limit():
    ctx = context()
    ctx = FormContext(**{**ctx.__dict__, "notice": "Your previous server was stopped at 10:00 UTC: idle <1h>."})
    page = render_form(ctx)
    fields = _Fields()
    fields.feed(page)
    assert set(fields.inputs) == {"image", "cpu", "mem", "folders"}
    assert fields.inputs["cpu"][0]["max"] == "1" and fields.inputs["cpu"][0]["value"] == "0.5"
    assert fields.inputs["mem"][0]["max"] == "2" and fields.inputs["mem"][0]["value"] == "1"
    assert [f["value"] for f in fields.inputs["folders"]] == ["@class-a/course", "alice/data"]
    assert "at most 1 per server or kernel; 1.5 left of your total" in page
    assert "at most 2 GiB; 3 GiB left of your total" in page
    assert "GPU: none (no NVIDIA GPU on this host)" in page
    assert "read-only" in page and "idle &lt;1h&gt;" in page  # escaped


def test_the_disk_field_is_offered_where_the_engine_holds_a_limit_and_says_how():
    ctx = context(max_disk="4G", total_disk="10G")
    ctx = FormContext(**{**ctx.__dict__, "remaining": {**ctx.remaining, "disk": 6 * GIB}})
    for disk in (None, {"mode": "none", "why": "Swarm tasks have no writable-layer quota"}, {"mode": "unknown"}):
        fields = _Fields()
        fields.feed(render_form(FormContext(**{**ctx.__dict__, "disk": disk})))
        assert "disk" not in fields.inputs, disk  # nothing would hold it: no field
    measured = {"mode": "measured", "why": "overlay2 on ext4", "interval_s": 60, "grace_s": 120}
    page = render_form(FormContext(**{**ctx.__dict__, "disk": measured}))
    fields = _Fields()
    fields.feed(page)
    (disk,) = fields.inputs["disk"]
    # the default (10 GiB) clamped to max_disk; steps of the least size (64 MiB), so whole GiB are valid
    assert (disk["value"], disk["max"], disk["min"], disk["step"]) == ("4", "4", "0.0625", "0.0625")
    assert "in GiB: at most 4 GiB; 6 GiB left of your total." in page
    assert "Checked every 60 s; over it, your server is warned, stopped 2 min later." in page
    enforced = {"mode": "enforced", "why": "overlay2 on xfs with pquota"}
    assert "Held by the engine: a write over it fails." in render_form(
        FormContext(**{**ctx.__dict__, "disk": enforced})
    )
    # the field is in GiB, as the memory field; over max_disk is refused naming the limit
    assert options_from_form({"disk": ["2"]}) == {"disk": "2G"}
    assert resolve_options(options_from_form({"disk": ["2"]}), ctx).resources.disk == 2 * GIB
    with pytest.raises(PolicyError, match="max_disk"):
        resolve_options(options_from_form({"disk": ["8"]}), ctx)
    with pytest.raises(RequestError, match="at least 64 MiB"):
        resolve_options({"disk": "1M"}, ctx)


# ---- the queue, against a real ledger ---------------------------------------------------------------
@pytest.fixture
def ledger(tmp_path):
    led = Ledger(data_dir=str(tmp_path))
    led.set_node_capacity("host", cpu=1.0, mem=4 * GIB)
    yield led
    led.close()


def _reserver(ledger, who: str, cpu: float):
    admission = Admission(ledger)
    policy = resolve(who, [], PolicySpec.parse({}))

    async def reserve():
        return await asyncio.to_thread(
            admission.reserve,
            owner=who,
            groups=[],
            policy=policy,
            request=Resources.parse({"cpu": cpu, "mem": "512M"}),
            kind="server",
            subject=f"{who}/",
            image=IMAGE,
        )

    return reserve


async def test_a_full_host_queues_in_order_and_tells_each_its_place(ledger):
    queue = SpawnQueue(max_starting=0, retry_interval=0.05)
    first = await queue.admit(Ticket("ann/", Resources.parse({"cpu": 0.75})), _reserver(ledger, "ann", 0.75), timeout=5)
    bob = Ticket("bob/", Resources.parse({"cpu": 0.5}))
    cid = Ticket("cid/", Resources.parse({"cpu": 0.25}))
    bob_task = asyncio.ensure_future(queue.admit(bob, _reserver(ledger, "bob", 0.5), timeout=5))
    await asyncio.sleep(0.1)
    cid_task = asyncio.ensure_future(queue.admit(cid, _reserver(ledger, "cid", 0.25), timeout=5))
    await asyncio.sleep(0.2)
    assert bob.message == "waiting for 0.5 CPU; you are next"
    assert cid.message == "waiting for 0.5 CPU; 1 ahead of you" and cid.position == 1
    assert not cid_task.done()  # 0.25 would fit, but nobody overtakes
    await asyncio.to_thread(ledger.release, first.id, "shutdown")
    queue.wake()
    admitted = await asyncio.wait_for(bob_task, 2)
    assert admitted.subject == "bob/" and bob.waited > 0.2
    assert (await asyncio.wait_for(cid_task, 2)).subject == "cid/"


async def test_start_slots_bound_concurrent_boots(ledger):
    queue = SpawnQueue(max_starting=1, retry_interval=0.05)
    a = Ticket("a/", Resources.parse({"cpu": 0.1}))
    await queue.admit(a, _reserver(ledger, "a", 0.1), timeout=5)
    b = Ticket("b/", Resources.parse({"cpu": 0.1}))
    task = asyncio.ensure_future(queue.admit(b, _reserver(ledger, "b", 0.1), timeout=5))
    await asyncio.sleep(0.1)
    assert b.message == "waiting for a start slot: 1 servers are starting"
    queue.done(a)
    await asyncio.wait_for(task, 2)
    assert queue.starting == 1 and queue.waiting == 0


async def test_queue_timeout_and_never_fits(ledger):
    queue = SpawnQueue(retry_interval=0.05)
    await queue.admit(Ticket("ann/", Resources()), _reserver(ledger, "ann", 1.0), timeout=1)
    with pytest.raises(QueueTimeout) as e:
        await queue.admit(Ticket("bob/", Resources.parse({"cpu": 0.5})), _reserver(ledger, "bob", 0.5), timeout=0.3)
    assert "waited 0 s in the queue (waiting for 0.5 CPU" in e.value.message and e.value.status == 503
    with pytest.raises(CapacityError) as e:  # more than the host has in all: refused at once, not queued
        await queue.admit(Ticket("cid/", Resources()), _reserver(ledger, "cid", 8), timeout=5)
    assert e.value.never_fits and queue.waiting == 0


async def test_a_cancelled_spawn_leaves_the_queue(ledger):
    queue = SpawnQueue(retry_interval=0.05)
    await queue.admit(Ticket("ann/", Resources()), _reserver(ledger, "ann", 1.0), timeout=1)
    bob, cid = Ticket("bob/", Resources()), Ticket("cid/", Resources())
    bob_task = asyncio.ensure_future(queue.admit(bob, _reserver(ledger, "bob", 0.5), timeout=5))
    cid_task = asyncio.ensure_future(queue.admit(cid, _reserver(ledger, "cid", 0.5), timeout=5))
    await asyncio.sleep(0.1)
    assert cid.position == 1
    bob_task.cancel()
    await asyncio.sleep(0.1)
    assert queue.waiting == 1 and cid.position == 0 and cid.message.endswith("you are next")
    cid_task.cancel()


def test_an_empty_spawn_the_form_accepts_is_one_admission_accepts(ledger):
    """The form and admission ask the same policy check: a max_pids of 256 clamps the server's default
    512 processes (the user asked for nothing), instead of passing the form and being refused by
    admission with "pids: you asked for 512 processes per kernel"."""
    ctx = context(max_pids=256)
    options = resolve_options({}, ctx)
    assert options.resources.pids == 256
    alloc = Admission(ledger).reserve(
        owner="alice",
        groups=["class-a"],
        policy=ctx.policy,
        request=options.resources,
        kind="server",
        subject="alice/",
        image=options.image,
    )
    assert alloc.resources.pids == 256
    with pytest.raises(PolicyError) as e:  # an explicit ask over it is still refused, naming the limit
        resolve_options({"pids": 512}, ctx)
    assert e.value.limit == "max_pids" and "for your server" in e.value.message


# ---- the single-user image's recipe inputs ---------------------------------------------------------
def test_singleuser_image_is_built_from_this_source_tree():
    from jupyter_berth.errors import EngineError
    from jupyter_berth.imagebuild.singleuser import _source_files, server_labels, source_root

    root = source_root()
    files = _source_files(root)
    assert (
        "hub_ext/spawner.py" in files
        and "setup.cfg" in files
        and "core/imagebuild/recipes/singleuser/Dockerfile" in files
    )
    assert not any("__pycache__" in f or f.endswith(".pyc") or f.startswith("tests/") for f in files)
    with pytest.raises(EngineError, match="not one"):
        source_root("/tmp")
    labels = server_labels(
        "abc",
        "3.11",
        {"python": "3.11.2", "jupyterlab": "4.6.6", "jupyterhub": "6.1.1", "jupyter_berth": "0.1"},
        "berth/python:3.11",
    )
    assert labels["io.jupyter.berth.kind"] == "server"  # never offered as a kernel image


# ---- fair sharing in the form: the groups' totals and the budgets, from a real service -------------
async def test_the_form_shows_the_groups_totals_and_the_budgets_left(tmp_path):
    import logging

    from traitlets.config import Config

    from jupyter_berth.hub.spawner_core import HubCore

    config = Config()
    config.BerthService.data_dir = str(tmp_path / "berth-data")
    config.BerthService.runtime_kind = "process"  # the form needs no engine
    config.BerthService.pool_size = 0
    config.ServerPool.size = 0
    config.BerthService.default_policy = {"budget": {"cpu_hours": 20, "period": "month"}}
    config.BerthService.group_policies = {
        "class-a": {
            "group_totals": {"cpu": 4, "kernels": 10},
            "group_budget": {"gpu_hours": 2, "period": {"name": "autumn", "start": "2026-09-01", "end": "2100-01-01"}},
        }
    }
    core = HubCore(config, logging.getLogger("test"), max_starting=1, retry_interval=0.1)
    try:
        ctx = await core.form_context(
            "alice", ["class-a"], "alice/", patterns=["berth/*"], default_image=IMAGE, default_request={"cpu": 0.5}
        )
        page = render_form(ctx)
    finally:
        await core.service.close()
    assert '<li class="berth-group-total">Group class-a: 0 CPU of 4 CPU, 0 kernels of 10 kernels in use</li>' in page
    assert re.search(r"20 of 20 CPU-hours left \(your budget, \d{4}-\d\d; resets \d{4}-\d\d-01\)", page)
    assert "2 of 2 GPU share-hours left (group class-a&#39;s budget, autumn; resets 2100-01-01)" in page
    assert ctx.remaining["cpu"] <= 4  # what is left is narrowed by the group's total, as in the sidebar
