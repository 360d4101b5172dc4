"""Resource requests: what a kernel or server asks for, parsed and validated.

A request names CPU (fractional cores), memory (bytes), processes (a pids
limit), shared memory (bytes) and GPU (a fraction of one device below 1, or a
whole number of devices). Every parser accepts the forms people type (``"2"``,
``"0.5"``, ``"512M"``, ``"4G"``, ``"4GiB"``, ``"0.25"``) and raises
:class:`~jupyter_berth.errors.RequestError` naming the field and the accepted
form otherwise.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from .errors import RequestError

#: Fields a request may carry, with what each accepts (used in error messages).
FIELDS = {
    "cpu": "a positive number of cores such as 0.5, 2 or 4",
    "mem": "a size such as 512M, 4G or 4GiB (K, M, G, T; binary units)",
    "pids": "a whole number of processes, at least 16",
    "shm": "a size such as 64M or 1G",
    "gpu": "a fraction of one GPU between 0 and 1 (such as 0.25) or a whole number of GPUs",
}
#: Aliases accepted in requests (forms, JSON bodies, kernelspec presets).
ALIASES = {"memory": "mem", "cpus": "cpu", "gpus": "gpu", "processes": "pids", "shm_size": "shm"}

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


@dataclass(frozen=True)
class Resources:
    """A resource grant or request. Memory sizes are bytes, CPU is cores."""

    cpu: float = 1.0
    mem: int = 1024**3
    pids: int = 512
    shm: int = 64 * 1024**2
    gpu: float = 0.0

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
        base = base or cls()
        values = asdict(base)
        for key, value in (data or {}).items():
            name = ALIASES.get(key, key)
            if name not in FIELDS:
                raise RequestError(key, f"unknown resource; known resources are {', '.join(FIELDS)}")
            if value is None or value == "":
                continue
            values[name] = {
                "cpu": parse_cpu,
                "mem": parse_memory,
                "pids": parse_pids,
                "shm": parse_memory,
                "gpu": parse_gpu,
            }[name](value, key)
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)

    def replace(self, **changes) -> Resources:
        return replace(self, **changes)

    def describe(self) -> str:
        """Short human label: ``"2 CPU · 4 GiB · ¼ GPU"``."""
        cpu = f"{self.cpu:g} CPU"
        parts = [cpu, format_bytes(self.mem)]
        if self.gpu:
            parts.append(f"{self.gpu:g} GPU")
        return " · ".join(parts)


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
