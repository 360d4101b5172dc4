"""Swarm services the way the Swarm runtime needs them: the docker-py calls it lacks or spreads over
several requests, and a one-replica service's state read as a container's.

The ``*_sync`` functions take docker-py's low-level ``APIClient`` and block: the runtime runs
them through its engine wrapper (``await runtime.docker(fn, ...)``), which translates Docker's
errors. :func:`container_info` is pure.
"""

from __future__ import annotations

import docker.errors

from .base import ContainerInfo
from .labels import IMAGE_REF, key
from .swarm_spec import TaskView, network_of, newest_task, service_name, user_facing_ref

#: Container states of a task that ended.
DONE = ("exited", "dead")


def service_and_task_sync(api, service_id: str) -> tuple[dict, dict | None]:
    """The service and its newest task (``None`` before Swarm made one). ``service_id`` may also be the
    container name the service was made for (:func:`.swarm_spec.service_name` turns it into the service's)."""
    try:
        service = api.inspect_service(service_id)
    except docker.errors.NotFound:
        if service_name(service_id) == service_id:
            raise
        service = api.inspect_service(service_name(service_id))
    tasks = [t for t in api.tasks(filters={"service": service["ID"]}) if t.get("ServiceID") == service["ID"]]
    return service, newest_task(tasks)


def services_with_tasks_sync(api, filters: dict) -> list[tuple[dict, dict | None]]:
    """Every service ``filters`` selects, each with its newest task, in two engine calls."""
    services = api.services(filters=filters)
    ids = [s["ID"] for s in services]
    tasks = api.tasks(filters={"service": ids}) if ids else []
    by_service: dict[str, list] = {}
    for t in tasks:
        by_service.setdefault(t.get("ServiceID"), []).append(t)
    return [(s, newest_task(by_service.get(s["ID"], []))) for s in services]


def create_service_sync(api, body: dict) -> str:
    """Create a service from a raw spec (docker-py's ``create_service`` cannot take one); its id."""
    return api._result(api._post_json(api._url("/services/create"), data=body), True)["ID"]


def scale_to_zero_sync(api, service_id: str) -> None:
    """Scale the service to no replica (its task stops with the service's grace period); retried when
    another update got in between (``out of sequence``)."""
    for _attempt in range(3):
        service = api.inspect_service(service_id)
        spec = service["Spec"]
        spec["Mode"] = {"Replicated": {"Replicas": 0}}
        try:
            api._result(
                api._post_json(
                    api._url("/services/{0}/update", service_id),
                    data=spec,
                    params={"version": service["Version"]["Index"]},
                ),
                True,
            )
            return
        except docker.errors.APIError as e:
            if "out of sequence" not in str(e):
                raise


def service_logs_sync(api, service_id: str, tail: int | None) -> bytes:
    """The service's combined output through the manager (when its node's engine is not reachable)."""
    chunks = api.service_logs(service_id, stdout=True, stderr=True, follow=False, tail=tail if tail else "all")
    return b"".join(chunks)


def container_info(service: dict, view: TaskView, node: str | None, registry: str) -> ContainerInfo:
    """The service's state as a container's. ``id`` is the service id; ``image_id`` the registry
    digest the task runs (the pinned version; empty when the image was not pulled by digest);
    ``node`` the name of the node the task is on; ``registry`` the site's (``c.SwarmRuntime.registry``)."""
    spec = service.get("Spec") or {}
    labels = dict(spec.get("Labels") or {})
    image = ((spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}).get("Image", "")
    net = network_of(service)
    ip = view.addresses.get(net) if net else None
    if ip is None:
        ip = next((a for n, a in view.addresses.items() if n and n != "ingress"), None)
    status = view.status
    return ContainerInfo(
        id=service["ID"],
        name=spec.get("Name", ""),
        status=status,
        labels=labels,
        image=labels.get(key(IMAGE_REF)) or user_facing_ref(image.split("@")[0], registry),
        image_id=image.split("@", 1)[1] if "@" in image else "",
        exit_code=view.exit_code if status == "exited" else None,
        oom_killed=False,
        started_at=view.timestamp if status == "running" else None,
        finished_at=view.timestamp if status in DONE else None,
        ip=ip,
        node=node,
    )


__all__ = [
    "DONE",
    "container_info",
    "create_service_sync",
    "scale_to_zero_sync",
    "service_and_task_sync",
    "services_with_tasks_sync",
    "service_logs_sync",
]
