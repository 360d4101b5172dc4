"""Usage reports and metrics of BerthService.

A mixin of :class:`~jupyter_berth.service.BerthService`: it may use the service's
``ledger``, ``runtime``, ``_db`` and ``log``, and adds the service's async methods
for this area.
"""

from __future__ import annotations


class UsageMixin:
    """Usage reports and metrics of BerthService."""
