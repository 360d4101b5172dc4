"""The spawn form's fair-sharing lines: the user's groups' totals in use and their budgets left.

The same figures the sidebar shows (the facade's ``policy_summary()["group_totals"]`` and
``fair.my_budget()["budgets"]``), worded for the form, so that a student sees before starting
that the class is at its total or their budget is nearly spent, rather than only in a refusal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from jupyter_berth.resources import resource_kinds

#: How budgets' amounts read (core/budgets.py ``Budget.amounts``).
BUDGET_WORDS = {"cpu_hours": "CPU-hours", "mem_gib_hours": "memory GiB-hours", "gpu_hours": "GPU share-hours"}
#: Counts a group total may cap besides the registry's kinds.
COUNT_WORDS = {"kernels": "kernels", "servers": "servers"}


def _amount(name: str, value: float) -> str:
    kind = next((k for k in resource_kinds() if k.name == name), None)
    if kind is not None:
        return kind.format(value)
    return f"{value:g} {COUNT_WORDS.get(name, name)}"


def group_lines(group_totals: Mapping[str, Mapping]) -> list[str]:
    """``"Group class-a: 1.5 CPU of 4 CPU, 3 of 10 kernels in use"`` for each group with totals."""
    lines = []
    for group, summary in sorted(group_totals.items()):
        caps, in_use = summary.get("totals") or {}, summary.get("in_use") or {}
        parts = [
            f"{_amount(name, in_use.get(name) or 0)} of {_amount(name, cap)}"
            for name, cap in caps.items()
            if cap is not None
        ]
        if parts:
            lines.append(f"Group {group}: {', '.join(parts)} in use")
    return lines


def _date(text: str | None) -> str:
    try:
        return datetime.fromisoformat(text).date().isoformat() if text else ""
    except ValueError:
        return text or ""


def budget_lines(budgets: Sequence[Mapping]) -> list[str]:
    """``"12.5 of 20 CPU-hours left (group class-a's budget, autumn; resets 2027-01-01)"`` per amount."""
    lines = []
    for b in budgets:
        whose = "your budget" if b.get("scope") == "user" else f"{b.get('scope')} {b.get('name')}'s budget"
        period = b.get("period")
        period_name = period.get("name") if isinstance(period, Mapping) else period
        when = f"{whose}, {period_name}; resets {_date(b.get('resets_at'))}"
        for key, limit in (b.get("limits") or {}).items():
            if limit is None:
                continue
            left = (b.get("remaining") or {}).get(key, 0)
            lines.append(f"{left:g} of {limit:g} {BUDGET_WORDS.get(key, key)} left ({when})")
    return lines


__all__ = ["BUDGET_WORDS", "budget_lines", "group_lines"]
