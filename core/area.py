"""What every area manager of the service is given: the ledger, the runtime and the ledger's threads.

:class:`~jupyter_berth.service.BerthService` composes one manager per area (``service.images``,
``service.folders``, ``service.usage``, ``service.gpus``), the way jupyter_server's ``ServerApp``
composes its ``kernel_manager`` and ``contents_manager``: each is a configurable with its own
``c.<Class>.*`` section, and what it needs from the service is declared here as traits that the
service links in (``ledger`` and ``runtime`` follow the service's own as they are opened), instead
of being read off a shared ``self`` that nobody declares.

The deprecated ``c.BerthService.<setting>`` names of settings that moved to a manager are mapped
by :data:`MOVED_SETTINGS` and honoured (with a warning naming the new setting) for one release.
"""

from __future__ import annotations

import asyncio
import warnings
from concurrent.futures import Executor
from copy import deepcopy

from traitlets import Instance
from traitlets.config import Config, DeferredConfig, LazyConfigValue, LoggingConfigurable

from ._version import __version__
from .ledger import Ledger
from .runtime.base import Runtime

#: The release that moved the settings; the next one drops the old names.
MOVED_IN = __version__.split(".dev")[0]

#: ``c.BerthService.<old>`` → (attribute of the service holding the manager, manager class, new name).
MOVED_SETTINGS: dict[str, tuple[str, str, str]] = {
    **{
        name: ("folders", "FolderManager", name)
        for name in (
            "folders_dir",
            "folder_uid",
            "folder_gid",
            "folder_quota",
            "user_folder_quotas",
            "group_folder_quotas",
            "folder_admins",
            "folder_usage_ttl",
            "share_check",
        )
    },
    **{name: ("images", "ImageCatalog", name) for name in ("admin_users", "admin_groups", "offer_new_images")},
    **{
        name: ("images.versions", "ImageVersions", name)
        for name in ("build_extra_ca_dir", "build_network", "pull_registries")
    },
    "sample_interval": ("usage", "UsageTracker", "sample_interval"),
    "gpus": ("gpus", "GpuManager", "devices"),
    **{
        name: ("gpus", "GpuManager", name)
        for name in (
            "gpu_policy",
            "gpu_quantum",
            "gpu_shareable",
            "gpu_enforcement",
            "gpu_mps_pipe_directory",
            "gpu_interception_library",
            "gpu_interception_env",
            "gpu_interception_mounts",
            "gpu_caps_startup_dir",
        )
    },
}


def moved_message(old: str) -> str:
    _, cls_name, new = MOVED_SETTINGS[old]
    return (
        f"c.BerthService.{old} is deprecated since jupyter-berth {MOVED_IN} and goes in the next release: "
        f"set c.{cls_name}.{new} instead"
    )


def warn_moved(log, old: str, stacklevel: int = 3) -> None:
    message = moved_message(old)
    warnings.warn(message, DeprecationWarning, stacklevel=stacklevel)
    log.warning(message)


def manager_of(service, old: str):
    path, _, _ = MOVED_SETTINGS[old]
    owner = service
    for part in path.split("."):
        owner = getattr(owner, part)
    return owner


def apply_moved(service, moved: dict, config: Config) -> None:
    """Set each deprecated ``c.BerthService.<old>`` value on the manager it moved to, unless the new
    setting is configured too (then the new one wins and the old one is named as ignored)."""
    for old, value in moved.items():
        _, cls_name, new = MOVED_SETTINGS[old]
        if config._has_section(cls_name) and new in config[cls_name]:
            service.log.warning(
                "%s; c.BerthService.%s is ignored, c.%s.%s is set", moved_message(old), old, cls_name, new
            )
            continue
        warn_moved(service.log, old, stacklevel=4)
        manager = manager_of(service, old)
        if isinstance(value, LazyConfigValue):
            value = value.get_value(getattr(manager, new))
        elif isinstance(value, DeferredConfig):
            value = value.get_value(manager.traits()[new])
        setattr(manager, new, deepcopy(value))


class MovedSetting:
    """``service.<old>`` for a setting that moved to a manager: reads and writes the manager's, with a warning."""

    def __init__(self, name: str):
        self.name = name

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        warn_moved(obj.log, self.name)
        return getattr(manager_of(obj, self.name), MOVED_SETTINGS[self.name][2])

    def __set__(self, obj, value):
        warn_moved(obj.log, self.name)
        setattr(manager_of(obj, self.name), MOVED_SETTINGS[self.name][2], value)


class ManagerHost(LoggingConfigurable):
    """Base of the service: its config without the settings that moved to a manager (those are kept
    aside while it loads its own config and passed on by :func:`apply_moved` once the managers exist;
    the service calls that and then marks itself ``_composed``), and ``service.<old>`` for each."""

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        # ``gpus`` is the GPU manager itself now; ``c.BerthService.gpus`` still works from config
        for old in MOVED_SETTINGS:
            if old != "gpus":
                setattr(cls, old, MovedSetting(old))

    def _find_my_config(self, cfg):
        mine = super()._find_my_config(cfg)
        moved = {old: mine.pop(old) for old in list(mine) if old in MOVED_SETTINGS}
        if moved and self.__dict__.get("_loading_config"):
            self.__dict__.setdefault("_moved_config", {}).update(moved)
        return mine

    def _load_config(self, cfg, section_names=None, traits=None):
        self.__dict__["_loading_config"] = True
        try:
            super()._load_config(cfg, section_names=section_names, traits=traits)
        finally:
            self.__dict__["_loading_config"] = False
        if self.__dict__.get("_moved_config") and self.__dict__.get("_composed"):  # config loaded again later
            apply_moved(self, self.__dict__.pop("_moved_config"), cfg)


class AreaManager(LoggingConfigurable):
    """Base of the service's area managers: the ledger and runtime it works on, the threads ledger calls run on."""

    ledger = Instance(Ledger, allow_none=True, help="The ledger (the service's, linked in when it opens; None before).")
    runtime = Instance(Runtime, allow_none=True, help="Where containers run (the service's; None before it starts).")
    executor = Instance(Executor, help="Threads that run blocking ledger calls (the service's own pool).")

    async def _db(self, fn, *args, **kw):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, lambda: fn(*args, **kw))


__all__ = ["MOVED_SETTINGS", "AreaManager", "ManagerHost", "MovedSetting", "apply_moved", "moved_message"]
