"""Virtual folders of BerthService (create, share, quota, mounts for kernels).

A mixin of :class:`~jupyter_berth.service.BerthService`: it may use the service's
``ledger``, ``runtime``, ``_db`` and ``log``, and adds the service's async methods
for this area.
"""

from __future__ import annotations


class FoldersMixin:
    """Virtual folders of BerthService (create, share, quota, mounts for kernels)."""
