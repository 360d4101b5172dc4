"""Group totals and budgets in admission's transaction: the one hook :class:`Admission` calls.

After the owner's lock and totals (:mod:`jupyter_berth.admission`), when the policy
has group totals or budgets: lock each group that has ``group_totals`` or a
``group_budget`` (PostgreSQL advisory locks, in name order), then
check the group totals (:mod:`jupyter_berth.group_admission`) and the budgets
(:mod:`jupyter_berth.budget_use`), each sum one aggregate query (:mod:`jupyter_berth.live_sums`).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from . import budget_use, group_admission
from .policies import EffectivePolicy
from .resources import Resources


def check(s: Session, policy: EffectivePolicy, request: Resources, kind: str) -> None:
    """Raise ``CapacityError`` (a group total) or ``PolicyError`` (a budget); nothing when neither is set."""
    locked = {*policy.group_totals, *policy.group_budgets}
    if not locked and policy.budget is None:
        return
    group_admission.lock_groups(s, locked)
    group_admission.check(s, policy.group_totals, request, kind)
    budget_use.check(s, policy, request, kind)
