"""JupyterHub integration: ``BerthSpawner`` and the hub-managed Berth service.

``BerthSpawner`` is imported lazily (``from jupyter_berth.hub import BerthSpawner``), so
that the service and the single-user image, which have no dockerspawner, can import
their own modules of this package.

The ``jupyterhub.spawners`` entry point ``berth`` names ``jupyter_berth.hub:BerthSpawner``, so
JupyterHub resolves it through :func:`__getattr__` each time it loads the class: when it does
so to apply ``c.JupyterHub.spawner_class`` (its whole configuration read by then), the
DockerSpawner settings in that configuration are checked, and a refused one stops the hub
with a message naming it (:mod:`.dockerspawner_settings`).
"""


def __getattr__(name):
    if name == "BerthSpawner":
        from .dockerspawner_settings import check_running_hub
        from .spawner import BerthSpawner

        check_running_hub()
        return BerthSpawner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BerthSpawner"]
