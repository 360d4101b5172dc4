"""Resource requests: what a kernel or server asks for, parsed and validated.

A request names CPU (fractional cores), memory (bytes), processes (a pids
limit), shared memory (bytes), GPU (a fraction of one device below 1, or a
whole number of devices) and disk (bytes a container may write outside its
volumes and folders: its writable layer). Every parser accepts the forms people type (``"2"``,
``"0.5"``, ``"512M"``, ``"4G"``, ``"4GiB"``, ``"0.25"``) and raises
:class:`~jupyter_berth.errors.RequestError` naming the field and the accepted
form otherwise.

Every kind of resource is described once, in the registry (:data:`KINDS`, Backend.AI's
resource slots): its name and aliases, how a value is parsed and written, the policy's limits
on it, whether the ledger totals it, how each runtime applies it and whether it can change on a
running container. Requests, policies, admission, the spawn form, the runtimes and the info API
iterate the registry; docs/architecture.md ("Adding a resource kind") lists what else a new kind
needs (a ledger column, the sidebar).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from .errors import RequestError

#: Fields a request may carry, with what each accepts (used in error messages); a view of :data:`KINDS`.
FIELDS: Mapping[str, str]
#: Aliases accepted in requests (forms, JSON bodies, kernelspec presets); a view of :data:`KINDS`.
ALIASES: Mapping[str, str]

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "ki": 1024,
    "kib": 1024,
    "kb": 1024,
    "m": 1024**2,
    "mi": 1024**2,
    "mib": 1024**2,
    "mb": 1024**2,
    "g": 1024**3,
    "gi": 1024**3,
    "gib": 1024**3,
    "gb": 1024**3,
    "t": 1024**4,
    "ti": 1024**4,
    "tib": 1024**4,
    "tb": 1024**4,
}
_SIZE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*$")

#: Smallest values that make sense for a Python kernel; below these it cannot start.
MIN_CPU = 0.01
MIN_MEM = 32 * 1024**2
MIN_PIDS = 16
MIN_DISK = 64 * 1024**2
#: GPU fractions are rounded to this many decimal places (shares are summed in the ledger).
GPU_DECIMALS = 4


def parse_memory(value: Any, field: str = "mem") -> int:
    """Parse a size (``"512M"``, ``"4G"``, ``"4GiB"``, ``1073741824``) into bytes.

    Units are binary (``4G`` is 4 GiB), as Docker reads them.
    """
    if isinstance(value, bool):
        raise RequestError(field, f"{value!r} is not a size; expected {FIELDS['mem']}")
    if isinstance(value, (int, float)):
        number, unit = float(value), ""
    elif isinstance(value, str):
        m = _SIZE_RE.match(value)
        if not m:
            raise RequestError(field, f"{value!r} is not a size; expected {FIELDS['mem']}")
        number, unit = float(m.group(1)), m.group(2).lower()
        if unit not in _UNITS:
            raise RequestError(field, f"unknown unit {m.group(2)!r} in {value!r}; expected {FIELDS['mem']}")
    else:
        raise RequestError(field, f"{value!r} is not a size; expected {FIELDS['mem']}")
    if not math.isfinite(number) or number <= 0:
        raise RequestError(field, f"{value!r} must be more than zero; expected {FIELDS['mem']}")
    return int(number * _UNITS[unit])


def format_bytes(n: int | float) -> str:
    """``4294967296`` → ``"4 GiB"``; ``536870912`` → ``"512 MiB"``."""
    n = float(n)
    for unit, size in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if abs(n) >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.2f}".rstrip("0").rstrip(".") + f" {unit}"
    return f"{int(n)} B"


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool):
        raise RequestError(field, f"{value!r} is not a number; expected {FIELDS[field]}")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str) and value.strip():
        try:
            number = float(value.strip())
        except ValueError:
            raise RequestError(field, f"{value!r} is not a number; expected {FIELDS[field]}") from None
    else:
        raise RequestError(field, f"{value!r} is not a number; expected {FIELDS[field]}")
    if not math.isfinite(number):
        raise RequestError(field, f"{value!r} is not a finite number; expected {FIELDS[field]}")
    return number


def parse_disk(value: Any, field: str = "disk") -> int:
    """A disk limit: a size (as :func:`parse_memory`) of at least :data:`MIN_DISK`."""
    number = parse_memory(value, field)
    if number < MIN_DISK:
        raise RequestError(field, f"{format_bytes(number)} is too little; ask for at least {format_bytes(MIN_DISK)}")
    return number


def parse_cpu(value: Any, field: str = "cpu") -> float:
    """Parse a CPU request in cores (``"0.5"``, ``2``); must be positive."""
    number = _number(value, "cpu")
    if number < MIN_CPU:
        raise RequestError(field, f"{value!r} is not a positive number of cores; expected {FIELDS['cpu']}")
    return round(number, 3)


def parse_pids(value: Any, field: str = "pids") -> int:
    number = _number(value, "pids")
    if number != int(number) or number < MIN_PIDS:
        raise RequestError(field, f"{value!r} is not allowed; expected {FIELDS['pids']}")
    return int(number)


def parse_gpu(value: Any, field: str = "gpu") -> float:
    """Parse a GPU request: 0 (none), a fraction in (0, 1), or a whole count."""
    number = _number(value, "gpu")
    if number < 0:
        raise RequestError(field, f"{value!r} is negative; expected {FIELDS['gpu']}")
    if number > 1 and number != int(number):
        raise RequestError(
            field,
            f"{value!r} is more than one GPU but not a whole number; a share above 1 must be a whole "
            f"number of devices (2, not 1.5); expected {FIELDS['gpu']}",
        )
    return round(number, GPU_DECIMALS)


#: CPU quota period (µs) the container runtimes use, and the smallest quota they set.
CPU_PERIOD = 100_000
MIN_CPU_QUOTA = 1_000


def cpu_quota(cpu: float) -> int:
    return max(MIN_CPU_QUOTA, int(round(cpu * CPU_PERIOD)))


def _nothing(value) -> dict:
    return {}


@dataclass(frozen=True)
class ResourceKind:
    """One kind of resource a kernel or server is granted, and everything each layer needs to know of it."""

    name: str  #: the key in requests, ``Resources`` and the ledger (``cpu``)
    accepts: str  #: what a value looks like, for error messages
    parse: Callable[[Any, str], float]  #: user input → number; raises RequestError naming the field
    format: Callable[[float], str]  #: number → words (``2 CPU``, ``4 GiB``)
    default: float  #: a request's value when nothing names it
    word: str  #: the kind in a sentence ("your policy allows no memory")
    aliases: tuple[str, ...] = ()  #: other spellings accepted in requests
    max_limit: str | None = None  #: the policy field bounding one kernel or server
    max_builtin: float = math.inf  #: its value when no policy sets it
    total_limit: str | None = None  #: the policy field bounding a user's live kernels and servers together
    total_builtin: float = math.inf
    whole: bool = False  #: a whole number (bytes, processes)
    shown: bool = False  #: part of the short label (``Resources.describe``)
    docker: Callable[[float], dict] = _nothing  #: docker-py ``create_host_config`` arguments
    docker_live: Callable[[float], dict] | None = None  #: ``POST /containers/{id}/update`` body; None: not live
    swarm: Callable[[float], dict] = _nothing  #: a Swarm task's ``Resources.Limits``
    swarm_reserved: bool = False  #: also reserved on the node (Swarm's placement sees it)
    cgroup_controller: str | None = None  #: the cgroup controller that bounds it for process kernels
    #: an engine feature ``docker`` needs (``disk_quota``); an engine without it does not get the mapping
    #: (``runtime/disk_quota.py`` says which engines have it, and what Berth does instead)
    engine_feature: str | None = None

    @property
    def live(self) -> bool:
        """Whether it can change on a running container (a warm-pool container, a server after boot)."""
        return self.docker_live is not None

    def value(self, number: float) -> float:
        """A limit clamped to this kind's type (bytes and processes are whole)."""
        return int(number) if self.whole else number


#: The registry: every resource kind, in the order forms and labels show them.
KINDS: dict[str, ResourceKind] = {}


def register(kind: ResourceKind) -> ResourceKind:
    """Add (or replace) a kind; every layer that iterates :data:`KINDS` sees it from now on."""
    KINDS[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    KINDS.pop(name, None)


def resource_kinds() -> list[ResourceKind]:
    return list(KINDS.values())


def kind_of(key: str) -> ResourceKind | None:
    """The kind a request key names (its name or an alias), ``None`` if none."""
    if key in KINDS:
        return KINDS[key]
    return next((k for k in KINDS.values() if key in k.aliases), None)


class _View(Mapping):
    def __init__(self, items: Callable[[], dict]):
        self._items = items

    def __getitem__(self, key):
        return self._items()[key]

    def __iter__(self):
        return iter(self._items())

    def __len__(self):
        return len(self._items())


FIELDS = _View(lambda: {k.name: k.accepts for k in KINDS.values()})
ALIASES = _View(lambda: {alias: k.name for k in KINDS.values() for alias in k.aliases})

register(
    ResourceKind(
        "cpu",
        "a positive number of cores such as 0.5, 2 or 4",
        parse_cpu,
        lambda v: f"{v:g} CPU",
        default=1.0,
        word="CPU",
        aliases=("cpus",),
        max_limit="max_cpu",
        total_limit="total_cpu",
        shown=True,
        docker=lambda v: {"cpu_period": CPU_PERIOD, "cpu_quota": cpu_quota(v)},
        docker_live=lambda v: {"CpuPeriod": CPU_PERIOD, "CpuQuota": cpu_quota(v)},
        swarm=lambda v: {"NanoCPUs": int(round(v * 1e9))},
        swarm_reserved=True,
        cgroup_controller="cpu",
    )
)
register(
    ResourceKind(
        "mem",
        "a size such as 512M, 4G or 4GiB (K, M, G, T; binary units)",
        parse_memory,
        format_bytes,
        default=1024**3,
        word="memory",
        aliases=("memory",),
        max_limit="max_mem",
        total_limit="total_mem",
        whole=True,
        shown=True,
        docker=lambda v: {"mem_limit": int(v), "memswap_limit": int(v)},  # memory = memory+swap: no swap
        docker_live=lambda v: {"Memory": int(v), "MemorySwap": int(v)},
        swarm=lambda v: {"MemoryBytes": int(v)},
        swarm_reserved=True,
        cgroup_controller="memory",
    )
)
register(
    ResourceKind(
        "pids",
        "a whole number of processes, at least 16",
        parse_pids,
        lambda v: f"{v:g} processes",
        default=512,
        word="processes",
        aliases=("processes",),
        max_limit="max_pids",
        max_builtin=4096,
        whole=True,
        docker=lambda v: {"pids_limit": int(v)},
        docker_live=lambda v: {"PidsLimit": int(v)},
        swarm=lambda v: {"Pids": int(v)},
        cgroup_controller="pids",
    )
)
register(
    ResourceKind(
        "shm",
        "a size such as 64M or 1G",
        parse_memory,
        format_bytes,
        default=64 * 1024**2,
        word="shared memory",
        aliases=("shm_size",),
        whole=True,
        docker=lambda v: {"shm_size": int(v)},  # a Swarm task gets a /dev/shm tmpfs of this size (swarm_spec)
    )
)
register(
    ResourceKind(
        "gpu",
        "a fraction of one GPU between 0 and 1 (such as 0.25) or a whole number of GPUs",
        parse_gpu,
        lambda v: f"{v:g} GPU",
        default=0.0,
        word="GPU",
        aliases=("gpus",),
        shown=True,
        max_limit="max_gpu",
        max_builtin=0.0,
        total_limit="total_gpu",
        total_builtin=0.0,
        # devices, not a number: the GPU allocator picks them and the runtimes attach those (gpu_device_ids)
    )
)
register(
    ResourceKind(
        "disk",
        "a size such as 2G or 10G (what a kernel or server may write outside its volumes and folders)",
        parse_disk,
        format_bytes,
        default=10 * 1024**3,
        word="disk space",
        aliases=("disk_size",),
        max_limit="max_disk",
        total_limit="total_disk",
        whole=True,
        # fixed when the container is made (not live); engines without quotas: measured (runtime/disk_quota.py)
        docker=lambda v: {"storage_opt": {"size": str(int(v))}},
        engine_feature="disk_quota",
        # no Swarm mapping (a task has no storage_opt) and no cgroup controller for process kernels
    )
)


def kinds_json() -> list[dict]:
    """The registry as ``GET berth/api/info`` reports it (what a client may ask for, and its limits)."""
    return [
        {
            "name": k.name,
            "accepts": k.accepts,
            "aliases": list(k.aliases),
            "default": k.default,
            "max_limit": k.max_limit,
            "total_limit": k.total_limit,
            "live": k.live,
        }
        for k in KINDS.values()
    ]


#: The kinds ``Resources`` holds as attributes of its own (others live in ``Resources.extra``).
BUILTIN_KINDS = ("cpu", "mem", "pids", "shm", "gpu")


@dataclass(frozen=True, eq=False)
class Resources:
    """A resource grant or request. Memory sizes are bytes, CPU is cores.

    The built-in kinds are attributes; a kind registered beyond them (:func:`register`) is held
    in ``extra`` and read the same way (``resources.disk``), its default when not asked for.
    """

    cpu: float = 1.0
    mem: int = 1024**3
    pids: int = 512
    shm: int = 64 * 1024**2
    gpu: float = 0.0
    extra: tuple[tuple[str, float], ...] = ()  #: ``((name, value), …)`` of registered kinds beyond the built-ins

    def __post_init__(self):
        if self.mem < MIN_MEM:
            raise RequestError(
                "mem",
                f"{format_bytes(self.mem)} is too little to run a kernel; ask for at least {format_bytes(MIN_MEM)}",
            )
        if self.shm > self.mem:
            raise RequestError(
                "shm", f"shared memory ({format_bytes(self.shm)}) cannot exceed memory ({format_bytes(self.mem)})"
            )

    def __eq__(self, other):  # by value of every registered kind: a default held in ``extra`` or not is the same
        return self.to_dict() == other.to_dict() if isinstance(other, Resources) else NotImplemented

    def __hash__(self):
        return hash(tuple(self.to_dict().items()))

    def __getattr__(self, name):  # a registered kind beyond the built-ins
        kind = KINDS.get(name) if not name.startswith("_") else None
        if kind is None:
            raise AttributeError(name)
        return dict(self.extra).get(name, kind.default)

    @property
    def gpu_is_fraction(self) -> bool:
        return 0 < self.gpu < 1

    @property
    def gpu_devices(self) -> int:
        """Whole devices asked for (0 for a fraction)."""
        return int(self.gpu) if self.gpu >= 1 else 0

    @classmethod
    def parse(cls, data: Mapping[str, Any] | None, base: Resources | None = None) -> Resources:
        """Build from a mapping of user input, filling what is missing from ``base``.

        Unknown keys are refused (a typo must not silently fall back to a default).
        """
        changes = {}
        for key, value in (data or {}).items():
            kind = kind_of(key)
            if kind is None:
                raise RequestError(key, f"unknown resource; known resources are {', '.join(FIELDS)}")
            if value is None or value == "":
                continue
            changes[kind.name] = kind.parse(value, key)
        return (base or cls()).replace(**changes)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Resources:
        """From :meth:`to_dict` (values already parsed); kinds no longer registered are left out."""
        values = {name: data[name] for name in BUILTIN_KINDS if name in data}
        extra = {name: v for name, v in data.items() if name not in BUILTIN_KINDS and name in KINDS}
        return cls(**values, extra=tuple(sorted(extra.items())))

    def to_dict(self) -> dict:
        """``{kind: value}`` for every registered kind."""
        return {kind.name: getattr(self, kind.name) for kind in KINDS.values()}

    def replace(self, **changes) -> Resources:
        extra = dict(self.extra)
        extra.update(dict(changes.pop("extra", ())))
        for name in [n for n in changes if n not in BUILTIN_KINDS and n != "extra"]:
            if name not in KINDS:
                raise RequestError(name, f"unknown resource; known resources are {', '.join(FIELDS)}")
            extra[name] = changes.pop(name)
        return replace(self, **changes, extra=tuple(sorted(extra.items())))

    def describe(self) -> str:
        """Short human label: ``"2 CPU · 4 GiB · ¼ GPU"`` (the kinds shown, when not zero)."""
        return " · ".join(
            kind.format(getattr(self, kind.name)) for kind in KINDS.values() if kind.shown and getattr(self, kind.name)
        )


@dataclass(frozen=True)
class Preset:
    """A named resource preset (offered as a kernelspec and in the sidebar)."""

    name: str
    display_name: str
    resources: Resources
    image: str | None = None
    description: str = ""

    @classmethod
    def parse(cls, name: str, data: Mapping[str, Any]) -> Preset:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,62}", name or ""):
            raise RequestError(
                "preset",
                f"{name!r} is not a valid preset name; use lower-case letters, digits, '.', '_' or '-' (at most 63)",
            )
        data = dict(data)
        display = data.pop("display_name", None)
        image = data.pop("image", None)
        description = data.pop("description", "")
        resources = Resources.parse(data)
        return cls(
            name=name,
            display_name=display or resources.describe(),
            resources=resources,
            image=image,
            description=description,
        )


def find_preset(presets: Mapping[str, Preset], name: str) -> Preset:
    from .errors import NotFoundError

    try:
        return presets[name]
    except KeyError:
        known = ", ".join(sorted(presets)) or "none are configured"
        raise NotFoundError(f"unknown preset {name!r}; known presets: {known}") from None
