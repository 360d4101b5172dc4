"""One reservation and one placement for every allocation kind (kernel, job, server).

Functions of a :class:`~jupyter_berth.service.BerthService` (``s``). :func:`reserve_call` binds
admission's reservation the same way for each kind; :func:`reserve` runs it on the ledger's thread.
:func:`place` puts an admitted allocation's node and GPUs on a container spec (kernels and jobs; a
server builds its spec with the same GPU plan itself, see ``servers.start_server``).
"""

from __future__ import annotations

import functools

from .runtime.swarm_spec import NODE_LABEL


def reserve_call(
    s, *, owner: str, groups, policy, request, kind: str, subject: str, image: str, this_host=False, server=None
):
    """Admission's reservation bound for one allocation (blocking; call it with ``queue_id=`` or via :func:`reserve`).

    The node: this host on a single-node site, admission's choice on a multi-node one (kernels, jobs
    and servers alike), unless ``this_host``.
    """
    return functools.partial(
        s.admission.reserve,
        owner=owner,
        groups=list(groups),
        policy=policy,
        request=request,
        kind=kind,
        subject=subject,
        image=image,
        node=s.node_name if this_host or not s._multi_node else None,
        gpu_assigner=s.gpus.gpu_assigner(),
        server=server,
    )


async def reserve(s, **kw):
    """Reserve at once (no start queue): :func:`reserve_call`'s reservation, run on the ledger's thread."""
    return await s._db(reserve_call(s, **kw))


def place(s, spec, alloc) -> None:
    """Pin ``spec`` to the allocation's node (multi-node sites) and give it the allocation's GPUs."""
    if s._multi_node:
        spec.labels[NODE_LABEL] = alloc.node  # the runtime pins the container to admission's choice
    spec.gpu_device_ids, gpu_env, gpu_mounts, gpu_plan = s.gpus.gpu_container(alloc.gpu_devices)
    spec.ipc_mode = gpu_plan.ipc_mode  # "host" for MPS clients; None (private) without a share
    spec.env.update(gpu_env)
    spec.mounts.extend(gpu_mounts)
