"""Which runtime a :class:`~jupyter_berth.service.BerthService` runs kernels on (``runtime_kind``).

* ``"docker"``: this host's Docker engine; a service whose engine is down fails to
  start with an error saying to run ``berth engine up``.
* ``"swarm"``: one-replica services on a Docker Swarm (``c.SwarmRuntime.*``).
* ``"process"``: local processes of the server's user, with limits and **no isolation**
  (:mod:`jupyter_berth.runtime.process`, ``docs/binder.md``).
* ``"auto"`` (the default): ``"docker"`` when an engine answers a ping within
  ``engine_probe_timeout`` seconds, else ``"process"``; one log line says which and why.

In process mode the only image is the local Python environment: it is added to what is
offered and becomes the default image, so kernelspecs, presets and the sidebar work
unchanged.
"""

from __future__ import annotations

import asyncio
import os

from ..engine import probe_engine
from ..images import catalog
from .base import Runtime
from .process import ProcessRuntime


async def choose(service) -> Runtime:
    """The runtime ``service.runtime_kind`` names (for "auto": whichever answers)."""
    kind = service.runtime_kind
    if kind == "auto":
        answers, why = await asyncio.to_thread(probe_engine, service.engine_probe_timeout)
        kind = "docker" if answers else "process"
        if answers:
            service.log.info("Berth runtime: docker (%s)", why)
        else:
            service.log.warning(
                "Berth runtime: process, because %s: kernels run as local processes of this user, "
                "with limits but no isolation (docs/binder.md). Set c.BerthService.runtime_kind = "
                "'docker' to require the engine instead.",
                why,
            )
    if kind == "swarm":
        from .swarm import SwarmRuntime

        return SwarmRuntime(parent=service)
    if kind == "process":
        runtime = ProcessRuntime(parent=service)
        if not runtime.state_dir:
            runtime.state_dir = os.path.join(service.data_dir, "process-runtime")
        return runtime
    from .docker import DockerRuntime

    return DockerRuntime(parent=service)


def offer_local_image(service) -> None:
    """On the process runtime: offer the local environment's pseudo image and make it the default."""
    runtime = service.runtime
    if not isinstance(runtime, ProcessRuntime):
        return
    ref = runtime.image_ref
    if not catalog.matches(ref, service.offered_images):
        service.offered_images = [*service.offered_images, ref]
    if service.default_image != ref:
        service.log.info(
            "Default image: %s, the local Python environment (%s needs a container engine)", ref, service.default_image
        )
        service.default_image = ref


async def describe(runtime) -> dict:
    """A runtime's name and isolation, and its engine's state (``up`` with its figures, or ``down``).

    ``isolation`` is ``container``, or ``none`` for process kernels (no container: limits only, as
    ``limits`` says: ``cgroup v1``, ``cgroup v2`` or ``rlimit``; see docs/binder.md); ``disk`` how disk limits
    hold (``enforced``, ``measured`` or ``none``: :mod:`.disk_quota`).
    """
    engine = {"state": "up"}
    try:
        engine.update(await runtime.ping())
    except Exception as e:  # noqa: BLE001 - report the engine's state, whatever it is
        engine = {"state": "down", "message": getattr(e, "message", str(e))}
    isolation = getattr(runtime, "isolation", "container")
    try:
        disk = (await runtime.disk_mode()).to_json() if engine["state"] == "up" else None
    except Exception as e:  # noqa: BLE001 - an engine that stops answering now: say so
        disk = None
        engine = {"state": "down", "message": getattr(e, "message", str(e))}
    return {
        "runtime": getattr(runtime, "name", None),
        "isolation": isolation,
        "limits": engine.get("limits") or ("container" if isolation == "container" else None),
        "engine": {k: engine.get(k) for k in ("state", "message", "version", "ncpu", "mem")},
        # how disk limits hold (runtime/disk_quota.py): enforced, measured or none
        "disk": disk
        or {"mode": "unknown", "why": "the engine does not answer", "driver": None, "backing_filesystem": None},
    }
