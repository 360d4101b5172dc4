"""JupyterHub integration: ``BerthSpawner`` and the hub-managed Berth service.

``BerthSpawner`` is imported lazily (``from jupyter_berth.hub import BerthSpawner``), so
that the service and the single-user image, which have no dockerspawner, can import
their own modules of this package.
"""


def __getattr__(name):
    if name == "BerthSpawner":
        from .spawner import BerthSpawner

        return BerthSpawner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BerthSpawner"]
