"""Tell a culled kernel from one shut down on request.

jupyter_server's idle culler (``MappingKernelManager.cull_kernel_if_idle``) shuts kernels down
through the same ``shutdown_kernel`` as a user's request, so the provisioner cannot tell the
two apart, and the ledger would account an idle kernel's end as ``shutdown``. The server
extension wraps the kernel manager's ``cull_kernel_if_idle`` so that, while it runs, the
context variable :data:`CULLING` names the kernel being culled; the provisioner's
``shutdown_requested`` (awaited inside it) reads it and records the end as ``culled``, which
the usage reports count with the kernel's idle time.
"""

from __future__ import annotations

import functools
from contextvars import ContextVar

#: The id of the kernel the idle culler is shutting down in this task, if any.
CULLING: ContextVar[str | None] = ContextVar("berth_culling", default=None)


def is_being_culled(kernel_id: str | None) -> bool:
    return kernel_id is not None and CULLING.get() == kernel_id


def mark_culling(kernel_manager) -> bool:
    """Wrap ``kernel_manager.cull_kernel_if_idle`` (once); ``False`` when it has none."""
    original = getattr(kernel_manager, "cull_kernel_if_idle", None)
    if original is None:
        return False
    if getattr(original, "_berth_marks_culling", False):
        return True

    @functools.wraps(original)
    async def cull_kernel_if_idle(kernel_id, *args, **kwargs):
        token = CULLING.set(kernel_id)
        try:
            return await original(kernel_id, *args, **kwargs)
        finally:
            CULLING.reset(token)

    cull_kernel_if_idle._berth_marks_culling = True  # type: ignore[attr-defined]
    kernel_manager.cull_kernel_if_idle = cull_kernel_if_idle
    return True
