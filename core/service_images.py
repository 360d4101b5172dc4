"""The image catalog operations of BerthService (offer, hide, default, alias, retire, pull, build, GC).

A mixin of :class:`~jupyter_berth.service.BerthService`: it may use the service's
``ledger``, ``runtime``, ``_db`` and ``log``, and adds the service's async methods
for this area.
"""

from __future__ import annotations


class ImagesMixin:
    """The image catalog operations of BerthService (offer, hide, default, alias, retire, pull, build, GC)."""
