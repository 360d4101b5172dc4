"""The spawn form's GPU control and the GPU checks of the options pipeline.

This host has no GPU: the devices are *declared* (as ``c.GpuManager.devices`` declares
them), and the tests that use them say so by name. The first part is pure (the form and
the pipeline, without a hub); the second runs a real JupyterHub with the Berth service and
real containers (tests/hub_process.py); the last checks the usage page's GPU share-hours.
"""

from __future__ import annotations

import contextlib
import html.parser
import time

import docker
import httpx
import pytest

from jupyter_berth.errors import CapacityError, PolicyError, RequestError
from jupyter_berth.gpu.inventory import GpuDevice
from jupyter_berth.gpu.manager import STARTUP_MOUNT
from jupyter_berth.hub.spawn_form import FormContext, ImageChoice, options_from_form, render_form, resolve_options
from jupyter_berth.hub.spawn_form_gpu import GpuOffer, check_gpu, gpu_bounds, share_words
from jupyter_berth.ledger import Ledger
from jupyter_berth.policies import PolicySpec, resolve
from jupyter_berth.resources import Resources

from .hub_process import HubProcess, running, server_image_or_skip
from .test_hub_spawn import api, wait_ready
from .test_usage_page import serve
from .usage_fixtures import SINCE, UNTIL, fill_known_history

GIB = 2**30
IMAGE = "berth/singleuser:3.11"
T4 = dict(name="Declared T4", memory_bytes=16 * GIB, declared=True)
DECLARED = (GpuDevice(index=0, uuid="GPU-declared-a", **T4), GpuDevice(index=1, uuid="GPU-declared-b", **T4))


def offer(free=(0.75, 1.0), quantum=0.25, shareable=None, devices=DECLARED) -> GpuOffer:
    return GpuOffer(
        devices=tuple(devices),
        free={d.uuid: f for d, f in zip(devices, free)},
        quantum=quantum,
        shareable=frozenset(shareable) if shareable is not None else None,
        source="declared",
        message="2 declared GPUs",
    )


def policy(**spec):
    return resolve("alice", ["tas"], PolicySpec.parse({"max_cpu": 2, "max_mem": "4G", **spec}), {})


def context(gpu: GpuOffer | None, remaining=None, defaults=None, **spec) -> FormContext:
    return FormContext(
        policy=policy(**spec),
        images=[ImageChoice(IMAGE)],
        default_image=IMAGE,
        defaults=Resources.parse(defaults or {"cpu": 0.5, "mem": "1G"}),
        remaining={"gpu": remaining},
        gpu=gpu,
    )


class _Form(html.parser.HTMLParser):
    """The GPU control's choices (``<option>`` values) or its number input, and the text."""

    def __init__(self, page: str):
        super().__init__()
        self.options, self.inputs, self.text, self._in_select, self.action = [], {}, [], False, None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "select" and a.get("name") == "gpu":
            self._in_select = True
        elif tag == "option" and self._in_select:
            self.options.append(a["value"])
        elif tag == "input":
            self.inputs[a.get("name")] = a
        elif tag == "form" and a.get("id") == "spawn_form":
            self.action = a.get("action")

    def handle_endtag(self, tag):
        if tag == "select":
            self._in_select = False

    def handle_data(self, data):
        self.text.append(data)

    @property
    def words(self) -> str:
        return " ".join(" ".join(self.text).split())


# ---- the bound: policy, totals, free shares -------------------------------------------------------
def test_declared_gpu_fractions_bounded_by_the_policy():
    form = _Form(render_form(context(offer(), max_gpu=0.5, total_gpu=1)))
    assert form.options == ["0", "0.25", "0.5"]  # max_gpu 0.5 (the devices have 0.75 and 1.0 free)
    assert "GPU 0 · Declared T4 (16 GiB) · declared · 0.75 of 1.0 free" in form.words
    assert "GPU 1 · Declared T4 (16 GiB) · declared · 1.0 of 1.0 free" in form.words
    assert "0.25 of a GPU (4 GiB of 16 GiB)" in form.words
    assert "at most 0.5 GPU per server (max_gpu, set by default)" in form.words


def test_declared_gpu_fractions_bounded_by_free_shares_and_whole_devices_when_free():
    busy = offer(free=(0.75, 0.5))
    assert _Form(render_form(context(busy, max_gpu=2, total_gpu=2))).options == ["0", "0.25", "0.5", "0.75"]
    # one device entirely free: fractions up to 0.75 and 1 whole GPU (the policy allows 2, one is free)
    form = _Form(render_form(context(offer(free=(0.75, 1.0)), max_gpu=2, total_gpu=2)))
    assert form.options == ["0", "0.25", "0.5", "0.75", "1"]
    assert "1 whole GPU" in form.words and "1 device is entirely free" in form.words
    both = _Form(render_form(context(offer(free=(1.0, 1.0)), max_gpu=2, total_gpu=2)))
    assert both.options[-2:] == ["1", "2"] and "2 whole GPUs" in both.words


def test_declared_gpu_bound_by_what_is_left_of_the_total():
    form = _Form(render_form(context(offer(free=(1.0, 1.0)), remaining=0.5, max_gpu=2, total_gpu=1)))
    assert form.options == ["0", "0.25", "0.5"]
    assert "0.5 is left of your total (total_gpu, set by default)" in form.words


def test_declared_gpu_whole_only_devices_offer_no_fraction_of_themselves():
    only_b = offer(free=(1.0, 0.25), shareable={"GPU-declared-b"})
    bounds = gpu_bounds(only_b, policy(max_gpu=1, total_gpu=1), None)
    assert bounds.choices() == [0.0, 0.25, 1.0]  # b takes fractions (0.25 free), a is whole only (free)
    assert "whole only" in _Form(render_form(context(only_b, max_gpu=1, total_gpu=1))).words


def test_declared_gpu_mig_enabled_parent_is_offered_neither_whole_nor_in_fractions():
    mig = (GpuDevice(index=0, uuid="GPU-declared-a", mig_mode=True, **T4), DECLARED[1])
    bounds = gpu_bounds(offer(free=(1.0, 1.0), devices=mig), policy(max_gpu=2, total_gpu=2), None)
    assert bounds.whole_max == 1 and bounds.choices()[-1] == 1.0  # only the plain GPU is offered whole
    assert "1 device is entirely free" in bounds.reasons


def test_declared_gpu_nothing_free_offers_no_gpu_and_says_why():
    form = _Form(render_form(context(offer(free=(0.0, 0.0)), max_gpu=1, total_gpu=1)))
    assert form.options == ["0"]
    assert "No GPU share you may have is free right now" in form.words and "0.0 of 1.0 free" in form.words


def test_declared_gpu_fine_quantum_gets_a_number_input_with_that_step():
    form = _Form(render_form(context(offer(quantum=0.01), max_gpu=1, total_gpu=1)))
    assert form.options == []
    gpu = form.inputs["gpu"]
    assert (gpu["type"], gpu["step"], gpu["min"], gpu["max"]) == ("number", "0.01", "0", "1")


def test_no_gpu_on_the_host_says_so_or_says_nothing_when_hidden():
    none = GpuOffer(message="no NVIDIA GPU on this host (no NVIDIA driver is installed)")
    page = render_form(context(none, max_gpu=1))
    assert "GPU: none (no NVIDIA GPU on this host (no NVIDIA driver is installed))" in page
    assert 'name="gpu"' not in page
    hidden = FormContext(**{**context(none, max_gpu=1).__dict__, "hide_missing_gpu": True})
    assert "GPU" not in render_form(hidden)


def test_declared_gpu_policy_without_gpu_shows_no_control():
    page = render_form(context(offer(), max_gpu=0))
    assert 'name="gpu"' not in page and "your policy allows no GPU: max_gpu is 0, set by default" in page


# ---- validation of what is submitted -----------------------------------------------------------
def test_declared_gpu_form_choice_becomes_the_request():
    ctx = context(offer(), max_gpu=1, total_gpu=1)
    assert resolve_options(options_from_form({"gpu": ["0.25"]}), ctx).resources.gpu == 0.25
    assert resolve_options(options_from_form({"gpu": ["0"]}), ctx).resources.gpu == 0.0  # 0: no GPU, accepted
    assert resolve_options({"gpu": 1}, ctx).resources.gpu == 1.0
    assert resolve_options({}, ctx).resources.gpu == 0.0


@pytest.mark.parametrize(
    "asked, error, words",
    [
        ("-0.25", RequestError, "gpu: '-0.25' is negative"),
        (1.5, RequestError, "more than one GPU but not a whole number"),
        ("0.3", RequestError, "gpu: 0.3 is not a multiple of the 0.25 quantum; ask for 0.25 or 0.5"),
        (3, CapacityError, "gpu: asked for 3 whole GPUs but this host has only 2; ask for 2 or fewer"),
    ],
)
def test_declared_gpu_requests_this_host_could_never_give_are_refused(asked, error, words):
    with pytest.raises(error) as e:
        resolve_options({"gpu": asked}, context(offer(), max_gpu=4, total_gpu=4))
    assert words in e.value.message


def test_declared_gpu_fraction_where_no_device_takes_fractions_is_refused():
    with pytest.raises(CapacityError) as e:
        check_gpu(0.5, offer(shareable=set()))
    assert e.value.never_fits and "no GPU on this host takes fractions" in e.value.message


def test_gpu_on_a_host_without_gpu_is_refused_and_a_default_gpu_is_dropped():
    none = GpuOffer()
    with pytest.raises(CapacityError) as e:
        resolve_options({"gpu": 0.5}, context(none, max_gpu=1))
    assert e.value.message == "gpu: asked for 0.5 GPU but there is no GPU on this host; ask for no GPU (gpu: 0)"
    assert e.value.never_fits
    # an admin's default with a GPU does not stop a spawn on a host without one
    assert (
        resolve_options({}, context(none, defaults={"cpu": 0.5, "mem": "1G", "gpu": 0.25}, max_gpu=1)).resources.gpu
        == 0
    )


def test_declared_gpu_over_the_policy_names_the_limit():
    with pytest.raises(PolicyError) as e:
        resolve_options({"gpu": 0.75}, context(offer(), max_gpu=0.5, total_gpu=1))
    assert e.value.limit == "max_gpu" and "allows at most 0.5 GPU (0.25 GPU over the max_gpu limit" in e.value.message


def test_offer_from_the_services_summary_keeps_this_hosts_devices():
    summary = {
        "source": "declared",
        "message": "3 declared GPUs",
        "quantum": 0.25,
        "policy": "spread",
        "devices": [dict(d.to_json()) for d in DECLARED]
        + [
            {
                "index": 2,
                "uuid": "GPU-elsewhere",
                "name": "A100",
                "memory_bytes": 40 * GIB,
                "mig_mode": False,
                "declared": True,
                "node": "gpu-node-2",
                "memory": "40 GiB",
            }
        ],
        "free": {"GPU-declared-a": 0.75, "GPU-declared-b": 1.0, "GPU-elsewhere": 1.0},
    }
    got = GpuOffer.from_summary(summary, shareable=None, node="this-host")
    assert [d.uuid for d in got.devices] == ["GPU-declared-a", "GPU-declared-b"]
    assert (got.quantum, got.placement, got.free["GPU-declared-a"]) == (0.25, "spread", 0.75)


# ---- a real hub, the Berth service, real containers -------------------------------------------------
DEVICE = {"uuid": "GPU-declared-spawnform-0", "name": "Declared T4", "memory": "16G"}
HUB_POLICIES = {
    "default": {"max_cpu": 1, "max_mem": "2G", "max_gpu": 1, "total_gpu": 1, "default": {"cpu": 0.25, "mem": "256M"}},
    "groups": {},
    "users": {"bob": {"max_gpu": 0.5, "total_gpu": 0.5}, "teacher": {"max_gpu": 2, "total_gpu": 2}},
}
#: The host has no NVIDIA Container Toolkit: Docker cannot honour a device request, so servers get the
#: devices by environment (NVIDIA_VISIBLE_DEVICES) — except carol's (group "toolkit"), which keep the default.
HUB_EXTRA = """
c.BerthSpawner.gpu_exposure = "environment"
c.JupyterHub.load_groups = {"class-a": {"users": ["alice", "bob", "teacher", "carol"]}, "toolkit": {"users": ["carol"]}}
c.BerthSpawner.group_overrides = {"toolkit": {"groups": ["toolkit"], "spawner_override": {"gpu_exposure": "device-request"}}}
"""


@pytest.fixture(scope="module")
def gpu_hub(tmp_path_factory):
    server_image_or_skip()
    hub = HubProcess(
        tmp_path_factory.mktemp("gpuform"),
        users=("alice", "bob", "teacher", "carol"),
        policies=HUB_POLICIES,
        extra=HUB_EXTRA,
        berth_extra=f"c.GpuManager.devices = [{DEVICE!r}]\nc.GpuManager.gpu_quantum = 0.25\n",
    )
    with running(hub) as h:
        yield h


@contextlib.contextmanager
def _login(hub, user: str):
    """A browser session of ``user`` (the demo's DummyAuthenticator)."""
    with httpx.Client(base_url=hub.url, timeout=60) as browser:
        browser.get("/hub/login")
        r = browser.post(
            "/hub/login", data={"username": user, "password": "berth-demo", "_xsrf": browser.cookies.get("_xsrf")}
        )
        assert r.status_code == 302, r.text
        yield browser


def _spawn_form(browser) -> _Form:
    r = browser.get("/hub/spawn")
    assert r.status_code == 200, r.text
    return _Form(r.text)


def _live(hub, owner: str) -> list:
    ledger = Ledger(data_dir=str(hub.root / "berth"))
    try:
        return ledger.live_allocations(owner=owner)
    finally:
        ledger.close()


@pytest.mark.docker
@pytest.mark.slow
def test_spawn_form_declared_gpu_offers_fractions_bounded_by_policy_and_free_shares(gpu_hub):
    with _login(gpu_hub, "alice") as browser:
        form = _spawn_form(browser)
    assert form.options == ["0", "0.25", "0.5", "0.75", "1"]  # max_gpu 1, the one device entirely free
    assert "GPU 0 · Declared T4 (16 GiB) · declared · 1.0 of 1.0 free" in form.words
    with _login(gpu_hub, "bob") as browser:
        assert _spawn_form(browser).options == ["0", "0.25", "0.5"]  # bob's max_gpu is 0.5


@pytest.mark.docker
@pytest.mark.slow
def test_spawn_form_declared_gpu_refusals_name_the_limit_and_reserve_nothing(gpu_hub):
    with _login(gpu_hub, "alice") as browser:
        form = _spawn_form(browser)
        r = browser.post(form.action, data={"image": IMAGE, "cpu": "0.5", "mem": "0.5", "gpu": "0.3"})
    assert r.status_code == 400, r.text
    assert "gpu: 0.3 is not a multiple of the 0.25 quantum; ask for 0.25 or 0.5" in r.text  # the form again, saying why
    refused = {
        ("teacher", 2): "gpu: asked for 2 whole GPUs but this host has only 1; ask for 1 or fewer",
        ("alice", 1.5): "more than one GPU but not a whole number",
        ("alice", -0.25): "gpu: -0.25 is negative",
        ("bob", 0.75): "your policy allows at most 0.5 GPU (0.25 GPU over the max_gpu limit, set by user bob)",
    }
    for (user, gpu), words in refused.items():
        r = api(gpu_hub, "POST", f"/users/{user}/server", json={"cpu": 0.25, "mem": "256M", "gpu": gpu})
        assert r.status_code == 400, (user, gpu, r.text)
        assert words in r.json()["message"], r.json()
    for user in ("alice", "bob", "teacher"):
        assert not api(gpu_hub, "GET", f"/users/{user}").json()["servers"]
        assert _live(gpu_hub, user) == []


@pytest.mark.docker
@pytest.mark.slow
def test_spawn_form_declared_gpu_quarter_share_reaches_the_container(gpu_hub):
    with _login(gpu_hub, "alice") as browser:
        form = _spawn_form(browser)
        r = browser.post(form.action, data={"image": IMAGE, "cpu": "0.5", "mem": "0.5", "gpu": "0.25"})
    assert r.status_code == 302 and "spawn-pending" in r.headers["location"], r.text
    server = wait_ready(gpu_hub, "alice")
    assert server["user_options"]["gpu"] == "0.25"
    (alloc,) = _live(gpu_hub, "alice")
    assert alloc.kind == "server" and [dict(d) for d in alloc.gpu_devices] == [{"uuid": DEVICE["uuid"], "share": 0.25}]

    client = docker.from_env()
    (container,) = [
        c
        for c in client.containers.list(filters={"label": ["io.jupyter.berth.kind=server", gpu_hub.site_label]})
        if c.labels.get("io.jupyter.berth.owner") == "alice"
    ]
    env = dict(e.split("=", 1) for e in container.attrs["Config"]["Env"])
    assert env["NVIDIA_VISIBLE_DEVICES"] == DEVICE["uuid"]
    assert env["BERTH_GPU_SHARE"] == "0.25" and int(env["BERTH_GPU_MEMORY_BYTES"]) == 4 * GIB  # 0.25 × 16 GiB
    assert env["BERTH_JAX_MEMORY_FRACTION"] == "0.25" and env["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    assert "XLA_CLIENT_MEM_FRACTION" not in env  # never both JAX names: the startup file picks one
    assert env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true" and env["BERTH_TORCH_MEMORY_FRACTION"] == "0.25"
    assert "0.25 GPU" in env["BERTH_LIMITS"]
    assert any(m["Destination"] == STARTUP_MOUNT and not m["RW"] for m in container.attrs["Mounts"])
    assert not container.attrs["HostConfig"].get("DeviceRequests")  # gpu_exposure = "environment"
    done = container.exec_run(
        [
            "python3",
            "-c",
            f"import os; print(os.environ['NVIDIA_VISIBLE_DEVICES']); print(len(open({STARTUP_MOUNT!r}).read()) > 0)",
        ],
        user="1000:100",
    )
    assert done.exit_code == 0 and done.output.decode().split() == [DEVICE["uuid"], "True"], done.output

    # The next user's form shows what is left: 0.75 free, no whole device.
    with _login(gpu_hub, "teacher") as browser:
        form = _spawn_form(browser)
    assert form.options == ["0", "0.25", "0.5", "0.75"]
    assert "GPU 0 · Declared T4 (16 GiB) · declared · 0.75 of 1.0 free" in form.words


@pytest.mark.docker
@pytest.mark.slow
def test_spawn_form_declared_gpu_device_request_without_a_driver_fails_and_releases(gpu_hub):
    """carol's servers ask Docker for the device (the default): this host cannot give it, and says so."""
    r = api(gpu_hub, "POST", "/users/carol/server", json={"cpu": 0.25, "mem": "256M", "gpu": 0.25})
    deadline = time.monotonic() + 60
    while api(gpu_hub, "GET", "/users/carol").json()["servers"] and time.monotonic() < deadline:
        time.sleep(0.3)
    assert not api(gpu_hub, "GET", "/users/carol").json()["servers"], "the spawn should have failed"
    assert _live(gpu_hub, "carol") == []
    with _login(gpu_hub, "carol") as browser:
        form = _spawn_form(browser)
    assert r.status_code == 503 and "this host's Docker cannot attach GPUs" in r.json()["message"], r.text
    assert "Your previous server was stopped at" in form.words and "cannot attach GPUs" in form.words, form.words
    free = 1.0 - sum(d["share"] for a in _live(gpu_hub, "alice") for d in a.gpu_devices or ())
    assert f"{share_words(round(free * 10_000))} of 1.0 free" in form.words  # carol's share was released


@pytest.mark.docker
@pytest.mark.slow
def test_spawn_form_declared_gpu_share_hours_in_the_usage_report(gpu_hub):
    assert api(gpu_hub, "DELETE", "/users/alice/server").status_code in (202, 204)
    deadline = time.monotonic() + 30
    while api(gpu_hub, "GET", "/users/alice").json()["servers"] and time.monotonic() < deadline:
        time.sleep(0.3)
    url = f"{gpu_hub.url}/services/berth/"
    rows = httpx.get(url + "usage.json", params={"by": "user"}, headers=gpu_hub.headers, timeout=60).json()["rows"]
    (alice,) = [row for row in rows if row["user"] == "alice"]
    assert alice["servers"] == 1 and alice["gpu_share_hours_allotted"] > 0
    assert alice["gpu_share_hours_allotted"] == pytest.approx(0.25 * alice["server_hours"], abs=1e-5)
    page = httpx.get(url + "usage", params={"by": "user"}, headers=gpu_hub.headers, timeout=60)
    assert page.status_code == 200 and "GPU share-h allotted" in page.text and "GPU share-hours allotted" in page.text


# ---- the usage page: GPU share-hours ----------------------------------------------------------------
async def test_usage_page_shows_gpu_share_hours(tmp_path):
    ledger = Ledger(f"sqlite:///{tmp_path / 'berth.sqlite'}")
    fill_known_history(ledger)  # ada: 0.5 GPU for 4 hours in the window → 2 share-hours
    s = await serve(ledger)
    try:
        r = await s.get("usage", since=SINCE, until=UNTIL, by="user")
        assert r.code == 200
        table = _Table(r.body.decode())
        column = table.header.index("GPU share-h allotted")
        assert {row[0]: row[column] for row in table.rows}["ada"] == "2.00"
        assert table.totals[0] == "Total" and table.totals[column] == "2.00"
        assert "2.00 GPU share-hours allotted" in r.body.decode()
    finally:
        s.server.stop()
        s.service._db_executor.shutdown(wait=False)
        ledger.close()


class _Table(html.parser.HTMLParser):
    def __init__(self, page: str):
        super().__init__()
        self.header, self.rows, self.totals, self._row, self._part = [], [], [], None, None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        if tag in ("thead", "tbody", "tfoot"):
            self._part = tag
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._row.append("")

    def handle_endtag(self, tag):
        if tag == "tr" and self._row is not None:
            {"thead": self.header, "tbody": self.rows, "tfoot": self.totals}[self._part].extend(
                [self._row] if self._part == "tbody" else self._row
            )
            self._row = None

    def handle_data(self, data):
        if self._row:
            self._row[-1] += data
