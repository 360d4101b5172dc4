"""Budgets per period (CPU-hours, memory GiB-hours, GPU share-hours), per user and per group.

Ledger tests run on SQLite and PostgreSQL with real admission transactions; the
enforcement test runs a real kernel container through the embedded service.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import update

from jupyter_berth.admission import Admission
from jupyter_berth.budget_use import statuses
from jupyter_berth.budgets import Budget, Period
from jupyter_berth.errors import PolicyError, RequestError
from jupyter_berth.ledger.models import AllocationRow
from jupyter_berth.policies import PolicySpec, resolve
from jupyter_berth.resources import Resources

GiB = 1024**3
IMAGE = "berth/python:3.11"
TERM = {"name": "autumn-2026", "start": "2026-09-01", "end": "2027-01-01"}


def test_budget_fields_parse_merge_and_periods():
    spec = PolicySpec.parse({"budget": {"cpu_hours": 20, "gpu_hours": 2, "period": TERM}}, "group class-a")
    assert spec.budget.amounts() == {"cpu_hours": 20.0, "gpu_hours": 2.0}
    assert spec.budget.period == Period("term", "autumn-2026", date(2026, 9, 1), date(2027, 1, 1))
    assert spec.to_json()["budget"]["period"] == TERM
    with pytest.raises(RequestError, match=r"user ada.group_budget: only a group policy"):
        PolicySpec.parse({"group_budget": {"cpu_hours": 1}}, "user ada")
    with pytest.raises(RequestError, match=r"budget.cpu_hours: -1 must be a number"):
        PolicySpec.parse({"budget": {"cpu_hours": -1}}, "group x")
    with pytest.raises(RequestError, match=r"ends \(2026-01-01\) before it starts"):
        PolicySpec.parse({"budget": {"period": {"start": "2026-02-01", "end": "2026-01-01"}}}, "group x")
    # two groups: the larger amount of each kind; a user's own budget replaces the groups'
    specs = {
        "a": PolicySpec.parse({"budget": {"cpu_hours": 20, "gpu_hours": 1}}, "group a"),
        "b": PolicySpec.parse({"budget": {"cpu_hours": 10, "mem_gib_hours": 5}}, "group b"),
    }
    merged = resolve("ada", ("a", "b"), None, specs).budget
    assert merged.amounts() == {"cpu_hours": 20.0, "mem_gib_hours": 5.0, "gpu_hours": 1.0}
    own = resolve("ada", ("a", "b"), None, specs, {"ada": PolicySpec.parse({"budget": {"cpu_hours": 1}}, "user ada")})
    assert own.budget.amounts() == {"cpu_hours": 1.0}
    # calendar months, December rolls over
    start, end, label = Period().window(datetime(2026, 12, 7, 16, tzinfo=timezone.utc))
    assert (start.day, end, label) == (1, datetime(2027, 1, 1, tzinfo=timezone.utc), "2026-12")


def _backdate(ledger, alloc_id, hours):
    then = datetime.now(timezone.utc) - timedelta(hours=hours)
    with ledger.transaction() as s:
        s.execute(update(AllocationRow).where(AllocationRow.id == alloc_id).values(started_at=then, created_at=then))


@pytest.fixture
def admission(ledger):
    ledger.set_node_capacity("n1", 64, 256 * GiB)
    return Admission(ledger)


def test_admission_refuses_a_start_the_budget_cannot_pay_for(ledger, admission):
    pol = resolve("ada", (), PolicySpec.parse({"budget": {"cpu_hours": 10, "min_run": 3600}}, "default_policy"))
    # 2 CPU held for 4.25 h (released) + 1 CPU running for 1 h = 9.5 CPU-hours used
    a = admission.reserve("ada", [], pol, Resources(cpu=2, mem=GiB), "kernel", "old", IMAGE)
    _backdate(ledger, a.id, 4.25)
    ledger.release(a.id, "shutdown")
    b = admission.reserve("ada", [], pol, Resources(cpu=1, mem=GiB), "kernel", "running", IMAGE)
    _backdate(ledger, b.id, 1)
    with ledger.reading() as s:
        (st,) = statuses(s, pol)
    assert st.used["cpu_hours"] == pytest.approx(9.5, abs=0.01) and st.rate["cpu_hours"] == 1.0
    with pytest.raises(PolicyError) as e:  # 1 CPU for the 1 h minimum run needs 1 CPU-hour; 0.5 is left
        admission.reserve("ada", [], pol, Resources(cpu=1, mem=GiB), "kernel", "new", IMAGE)
    assert e.value.limit == "budget.cpu_hours"
    now = datetime.now(timezone.utc)
    reset = datetime(now.year + (now.month == 12), now.month % 12 + 1, 1).strftime("%Y-%m-%d 00:00 UTC")
    assert "your budget of 10 CPU-hours for" in e.value.message and "has 0.49 CPU-hours left" in e.value.message
    assert "needs 1 CPU-hours for a minimum run of 1 h" in e.value.message
    assert e.value.message.endswith(f"it resets on {reset}")
    # a smaller start still fits (0.25 CPU × 1 h)
    admission.reserve("ada", [], pol, Resources(cpu=0.25, mem=GiB), "kernel", "small", IMAGE)


def test_a_group_budget_is_shared_by_its_members_and_a_term_ends(ledger, admission):
    specs = {"class-a": PolicySpec.parse({"group_budget": {"gpu_hours": 1, "min_run": 600}}, "group class-a")}
    ada = resolve("ada", ("class-a",), PolicySpec.parse({"max_gpu": 1, "total_gpu": 1}, "default_policy"), specs)
    bob = resolve("bob", ("class-a",), PolicySpec.parse({"max_gpu": 1, "total_gpu": 1}, "default_policy"), specs)
    a = admission.reserve("ada", ["class-a"], ada, Resources(cpu=1, mem=GiB), "kernel", "cpu-only", IMAGE)
    _backdate(ledger, a.id, 1)  # no GPU held: costs no GPU-hours
    with ledger.reading() as s:
        (st,) = statuses(s, bob)
    assert st.scope == "group" and st.used["gpu_hours"] == 0.0
    # ada's GPU record: 0.5 GPU for 1.9 h = 0.95 of the group's 1 GPU-hour
    with ledger.transaction() as s:
        s.add(
            AllocationRow(
                id=str(uuid.uuid4()), owner="ada", groups=["class-a"], kind="kernel", subject="g", image=IMAGE,
                node="n1", cpu=1, mem=GiB, pids=64, shm=64 * 1024**2, gpu=0.5, state="running",
                created_at=datetime.now(timezone.utc) - timedelta(hours=1.9),
            )
        )  # fmt: skip
    with pytest.raises(PolicyError) as e:  # bob's 0.5 GPU for 10 min needs 0.083; 0.05 is left
        admission.reserve("bob", ["class-a"], bob, Resources(cpu=1, mem=GiB, gpu=0.5), "kernel", "k", IMAGE)
    assert e.value.limit == "group_budget.gpu_hours"
    assert "group class-a's budget of 1 GPU share-hours" in e.value.message
    assert re.search(r"has 0\.0[45] GPU share-hours left .* needs 0\.08 GPU share-hours", e.value.message)
    # a term that is over gives nothing
    over = resolve("cy", (), PolicySpec.parse({"budget": {"cpu_hours": 100, "period": {"start": "2020-01-01", "end": "2020-06-01"}}}, "default_policy"))  # fmt: skip
    with pytest.raises(PolicyError, match=r"has 0 CPU-hours left.*the term 2020-01-01..2020-06-01 ends on 2020-06-01"):
        admission.reserve("cy", [], over, Resources(cpu=1, mem=GiB), "kernel", "k", IMAGE)


@pytest.mark.docker
async def test_a_budget_runs_out_mid_kernel_the_kernel_is_warned_then_stopped(tmp_path):
    from jupyter_berth.budget_enforcement import enforce
    from jupyter_berth.runtime.docker import DockerRuntime
    from jupyter_berth.service import BerthService

    from .berth_fixtures import service_config

    data = tmp_path / "data"
    data.mkdir()
    # 0.5 CPU may run for 2 minutes (1/60 CPU-hour); starts need 10 s of it; warn 5 minutes before the end
    config = service_config(
        str(data), budget={"cpu_hours": 1 / 60, "min_run": 10, "warn_before": 300, "period": "month"}
    )
    service = BerthService(config=config, runtime=DockerRuntime())
    await service.start()
    try:
        kid = f"budget-{uuid.uuid4().hex[:6]}"
        await service.start_kernel("dora", kernel_id=kid, request={"cpu": 0.5, "mem": "256M"})
        first = await enforce(service)
        assert first == [("warned", kid, "user:dora:cpu_hours")]
        assert await enforce(service) == []  # warned once
        mine = await service.fair.my_budget("dora")
        (budget,) = mine["budgets"]
        assert budget["scope"] == "user" and budget["limits"] == {"cpu_hours": pytest.approx(1 / 60)}
        assert 0 < budget["remaining"]["cpu_hours"] < 1 / 60 and budget["rate_per_hour"] == {"cpu_hours": 0.5}
        assert mine["notices"][0]["action"] == "warned" and "runs out in about" in mine["notices"][0]["message"]
        metrics = await service.usage.metrics_text()
        assert 'berth_budget_remaining{kind="cpu_hours",name="dora",period="' in metrics
        # three minutes on, the budget is used up: the kernel is stopped and the record says why
        later = datetime.now(timezone.utc) + timedelta(minutes=3)
        assert await enforce(service, now=later) == [("stopped", kid, "user:dora:cpu_hours")]
        assert await service.list_kernels("dora") == []
        (record,) = await asyncio.to_thread(service.ledger.usage_records, None, None)
        assert record.end_reason == "budget"
        assert record.message.startswith("cpu_hours: your budget of 0.02 CPU-hours for ")
        assert "is used up (set by default), so the kernel was stopped; it resets on" in record.message
        with pytest.raises(Exception, match="is no longer running: cpu_hours: your budget"):
            await service.kernel_state("dora", kid)
    finally:
        for alloc in await service.list_kernels():
            await service.stop_kernel(alloc.owner, alloc.subject, now=True)
        await service.stop()


def test_budget_record_of_a_policy_round_trips_to_json():
    b = Budget.parse({"cpu_hours": 5, "period": "month", "min_run": 60}, "budget")
    assert Budget.parse(b.to_json(), "budget") == b


def test_berth_budgets_cli_and_prometheus_gauges(tmp_path):
    import json
    import subprocess
    import sys

    from jupyter_berth.budget_report import exposition
    from jupyter_berth.ledger import Ledger

    data = tmp_path / "data"
    ledger = Ledger(data_dir=str(data))
    ledger.set_node_capacity("n1", 8, 64 * GiB)
    config = tmp_path / "berth_config.py"
    config.write_text(
        "c.BerthService.group_policies = {'class-a': {'budget': {'cpu_hours': 20},"
        " 'group_budget': {'cpu_hours': 100, 'gpu_hours': 4}}}\n"
    )
    specs = {"class-a": PolicySpec.parse({"budget": {"cpu_hours": 20}, "group_budget": {"cpu_hours": 100}}, "group a")}
    for user, hours in (("ada", 2), ("bob", 1)):
        a = Admission(ledger).reserve(
            user, ["class-a"], resolve(user, ("class-a",), None, specs), Resources(cpu=1, mem=GiB), "kernel", "k", IMAGE
        )
        _backdate(ledger, a.id, hours)
        ledger.release(a.id, "shutdown")
    ledger.close()
    out = subprocess.run(
        [sys.executable, "-m", "jupyter_berth", "budgets", f"--config={config}", f"--data-dir={data}", "--format=json"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    rows = {(r["scope"], r["name"]): r for r in json.loads(out)["budgets"]}
    assert set(rows) == {("user", "ada"), ("user", "bob"), ("group", "class-a")}
    assert rows[("user", "ada")]["used"]["cpu_hours"] == pytest.approx(2, abs=0.01)
    assert rows[("group", "class-a")]["remaining"]["cpu_hours"] == pytest.approx(97, abs=0.01)
    assert rows[("group", "class-a")]["remaining"]["gpu_hours"] == 4
    table = subprocess.run(
        [sys.executable, "-m", "jupyter_berth", "budgets", f"--config={config}", f"--data-dir={data}", "--group=class-a"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    assert "group  class-a" in table and "cpu_hours" in table and "97.00" in table
    text = exposition(list(rows.values()))
    assert 'berth_budget_remaining{kind="cpu_hours",name="class-a",period=' in text
    assert 'berth_budget_limit{kind="gpu_hours",name="class-a"' in text


def test_cached_budget_use_follows_releases_without_counting_twice(ledger, admission):
    pol = resolve(
        "ada", ("class-a",), None, {"class-a": PolicySpec.parse({"group_budget": {"cpu_hours": 50}}, "group a")}
    )
    ids = []
    for i in range(3):
        a = admission.reserve("ada", ["class-a"], pol, Resources(cpu=1, mem=GiB), "kernel", f"k{i}", IMAGE)
        _backdate(ledger, a.id, 2)
        ids.append(a.id)
    ledger.release(ids[0], "shutdown")
    for step in range(3):  # each look reads the records added since the last (the sum is cached)
        with ledger.reading() as s:
            (st,) = statuses(s, pol)
        assert st.used["cpu_hours"] == pytest.approx(6, abs=0.01), step
        if step < 2:
            ledger.release(ids[step + 1], "shutdown")
    assert st.rate["cpu_hours"] == 0.0
