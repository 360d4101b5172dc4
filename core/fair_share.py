"""Fair sharing as the service offers it (``service.fair``): a user's budgets and waiting starts, the
admin's overview of group totals and budgets, and the rules applied after every sampling round.

:class:`FairShare` acts through the service (policies, live allocations, ``stop_kernel``), as
:class:`~jupyter_berth.jobs.manager.JobManager` does; the rules themselves are in
:mod:`.budget_enforcement`, :mod:`.idle_enforcement`, :mod:`.start_queue`, :mod:`.group_admission`
and :mod:`.budget_report`. The usage tracker calls :meth:`FairShare.apply_usage_rules` after each
round and appends :meth:`FairShare.budget_metrics` to its metrics (the service links both).
"""

from __future__ import annotations

from . import budget_enforcement, budget_report, disk_enforcement, group_admission, idle_enforcement, start_queue
from .errors import NotFoundError
from .policies import PolicySpec


class FairShare:
    """Budgets, the start queue and idle-by-utilization rules of one :class:`~jupyter_berth.service.BerthService`."""

    def __init__(self, service):
        self.service = service

    async def my_budget(self, user: str, groups=()) -> dict:
        """``user``'s budgets (their own and their groups'), use so far, what is left and when it resets,
        and the warnings and stops their kernels got (``budget_enforcement.my_budget``)."""
        return await budget_enforcement.my_budget(self.service, user, groups)

    async def my_queue(self, user: str) -> dict:
        """``user``'s kernel starts waiting in the start queue, each with how many wait ahead of it."""
        s = self.service
        return {"waiting": await s._db(start_queue.of_owner, s.ledger, user)}

    async def cancel_queued_start(self, user: str, kernel_id: str) -> None:
        """Take ``user``'s waiting start of ``kernel_id`` out of the line (its start then fails, saying so)."""
        s = self.service
        if not await s._db(start_queue.cancel, s.ledger, user, kernel_id):
            raise NotFoundError(f"no start of kernel {kernel_id!r} of yours is waiting in the queue")

    async def overview(self) -> dict:
        """For the admin usage page: each group's live use against its ``group_totals``, and every
        budget against its use (``budget_report.all_budgets``). Admin-only at every front end."""
        s = self.service
        _, stored_groups, _ = await s._db(s.ledger.get_policies)
        specs = {g: PolicySpec.parse(spec, f"group_policies.{g}") for g, spec in s.group_policies.items()}
        specs.update({g: PolicySpec.parse(spec, f"group {g}") for g, spec in stored_groups.items()})
        totals = {g: spec.group_totals for g, spec in sorted(specs.items()) if spec.group_totals}
        return {
            "group_totals": await s._db(group_admission.totals_summary, s.ledger, totals),
            "budgets": await budget_report.all_budgets(s),
        }

    async def apply_usage_rules(self) -> list[tuple[str, str, str]]:
        """After a sampling round: cull kernels idle by utilization (``idle_cpu``/``idle_gpu``), warn or
        stop kernels whose budget runs low or out, and (where the engine cannot) kernels and servers over
        their disk limit. Returns ``[(action, kernel id, rule), ...]``."""
        return [
            *await idle_enforcement.enforce(self.service),
            *await budget_enforcement.enforce(self.service),
            *await disk_enforcement.enforce(self.service),
        ]

    async def budget_metrics(self) -> str:
        """The budgets as Prometheus gauges (appended to the usage tracker's metrics)."""
        return budget_report.exposition(await budget_report.all_budgets(self.service))


__all__ = ["FairShare"]
