"""Usage reports and metrics of BerthService.

A mixin of :class:`~jupyter_berth.service.BerthService`: it may use the service's
``ledger``, ``runtime``, ``_db`` and ``log``, and adds the service's async methods
for this area. Identity is an argument here as everywhere in the service: the
front ends decide who may see what (an admin every report, a user their own).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from .reports import Report, build_report


def quota_json(summary: dict) -> dict:
    """A user's totals from :meth:`BerthService.policy_summary`: the policy's limits, what their live
    kernels and servers hold and what is left. Memory in bytes; ``None`` where there is no limit."""
    policy = summary["policy"]
    limits = {
        key: policy.get(field)
        for key, field in (("cpu", "total_cpu"), ("mem", "total_mem"), ("gpu", "total_gpu"), ("kernels", "max_kernels"))
    }
    return {
        "limits": {k: None if v in (None, "unlimited") else v for k, v in limits.items()},
        "in_use": dict(summary["usage"]),
        "remaining": dict(summary["remaining"]),
    }


class UsageMixin:
    """Usage reports and metrics of BerthService."""

    #: Optional: how many start requests wait for room (the hub's queue sets it); 0 when unset.
    queue_length: Callable[[], int | Awaitable[int]] | None = None

    async def usage_report(
        self,
        since=None,
        until=None,
        by="user",
        *,
        user: str | None = None,
        group: str | None = None,
        image: str | None = None,
    ) -> Report:
        """The usage report for ``[since, until)`` grouped ``by`` (``user``, ``group``, ``image``, ``day``
        or a comma-separated combination), optionally for one user, group or image.

        Admin-only at every front end. Raises ``RequestError`` (400) for a malformed window or grouping.
        """
        return await self._db(build_report, self.ledger, since, until, by, user=user, group=group, image=image)

    async def my_usage(self, user: str, since=None, until=None, *, groups=(), by="day") -> dict:
        """``user``'s own usage (never anyone else's) and what is left of their quota.

        ``{"user", "window", "by", "rows", "totals", "quota": {"limits", "in_use", "remaining"}, ...}``;
        memory in bytes, ``None`` where the policy sets no limit (as ``policy_summary``).
        """
        report = await self._db(build_report, self.ledger, since, until, by, user=user)
        summary = await self.policy_summary(user, groups)
        return {"user": user, **report.to_json(), "quota": quota_json(summary)}

    async def my_budget(self, user: str, groups=()) -> dict:
        """``user``'s budgets (their own and their groups'), use so far, what is left and when it resets,
        and the warnings and stops their kernels got (``budget_enforcement.my_budget``)."""
        from .budget_enforcement import my_budget

        return await my_budget(self, user, groups)

    async def my_queue(self, user: str) -> dict:
        """``user``'s kernel starts waiting in the start queue, each with how many wait ahead of it."""
        from . import start_queue

        return {"waiting": await self._db(start_queue.of_owner, self.ledger, user)}

    async def cancel_queued_start(self, user: str, kernel_id: str) -> None:
        """Take ``user``'s waiting start of ``kernel_id`` out of the line (its start then fails, saying so)."""
        from . import start_queue
        from .errors import NotFoundError

        if not await self._db(start_queue.cancel, self.ledger, user, kernel_id):
            raise NotFoundError(f"no start of kernel {kernel_id!r} of yours is waiting in the queue")

    async def fair_share_overview(self) -> dict:
        """For the admin usage page: each group's live use against its ``group_totals``, and every
        budget against its use (``budget_report.all_budgets``). Admin-only at every front end."""
        from . import budget_report, group_admission
        from .policies import PolicySpec

        _, stored_groups, _ = await self._db(self.ledger.get_policies)
        specs = {g: PolicySpec.parse(spec, f"group_policies.{g}") for g, spec in self.group_policies.items()}
        specs.update({g: PolicySpec.parse(spec, f"group {g}") for g, spec in stored_groups.items()})
        totals = {g: spec.group_totals for g, spec in sorted(specs.items()) if spec.group_totals}
        return {
            "group_totals": await self._db(group_admission.totals_summary, self.ledger, totals),
            "budgets": await budget_report.all_budgets(self),
        }

    async def apply_usage_rules(self) -> list[tuple[str, str, str]]:
        """After a sampling round: cull kernels idle by utilization (``idle_cpu``/``idle_gpu``), then
        warn or stop kernels whose budget runs low or out.

        Returns ``[(action, kernel id, rule), ...]``; the sampler loop calls it."""
        from . import budget_enforcement, idle_enforcement

        return [*await idle_enforcement.enforce(self), *await budget_enforcement.enforce(self)]

    async def metrics_text(self, queue_length: Callable[[], int | Awaitable[int]] | int | None = None) -> str:
        """Prometheus text exposition of capacity, live allocations, queue length and usage totals."""
        source = queue_length if queue_length is not None else self.queue_length
        waiting = source() if callable(source) else source
        if inspect.isawaitable(waiting):
            waiting = await waiting
        from . import metrics  # prometheus_client is needed only here

        if getattr(self, "_usage_totals", None) is None:
            self._usage_totals = metrics.UsageTotals()
        snap = await self._db(metrics.snapshot, self.ledger, self._usage_totals)
        from . import budget_report

        budgets = await budget_report.all_budgets(self)
        return metrics.exposition(snap, int(waiting or 0)) + budget_report.exposition(budgets)
