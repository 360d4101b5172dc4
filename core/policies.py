"""Policies: what a user may ask for, per kernel and in total.

A policy is layered. The *default* policy applies to everyone; *group* policies
apply to members of a group; a *user* policy applies to one user. They combine
field by field:

1. start from the default policy;
2. for every field that at least one of the user's groups sets, the most
   generous value among those groups wins (a larger limit, ``unlimited`` over any
   number, the union of allowed images, the longer idle timeout);
3. a field the user's own entry sets overrides whatever the groups gave.

A field left unset at every level takes the built-in value (see
:data:`BUILTIN`). ``None`` in a :class:`PolicySpec` means "not set at this
level"; the string ``"unlimited"`` (or ``math.inf``) means no limit.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from .budgets import Budget
from .errors import PolicyError, RequestError
from .group_totals import GroupTotals
from .idle_rules import IdleRule
from .resources import Resources, format_bytes, parse_cpu, parse_gpu, parse_memory, parse_pids

UNLIMITED = math.inf

# How each numeric field is parsed from config/JSON.
_PARSERS = {
    "max_cpu": parse_cpu,
    "max_mem": parse_memory,
    "max_gpu": parse_gpu,
    "max_pids": parse_pids,
    "total_cpu": parse_cpu,
    "total_mem": parse_memory,
    "total_gpu": parse_gpu,
}


def _parse_limit(name: str, value: Any) -> float:
    if value is None:
        return None
    if value == "unlimited" or (isinstance(value, float) and math.isinf(value)):
        return UNLIMITED
    if name in _PARSERS:
        if name in ("max_gpu", "total_gpu") and value in (0, "0"):
            return 0.0
        return _PARSERS[name](value, name)
    if name in ("max_kernels", "idle_timeout", "max_lifetime", "queue_timeout"):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise RequestError(name, f"{value!r} is not a whole number (or 'unlimited')")
        try:
            number = float(value)
        except ValueError:
            raise RequestError(name, f"{value!r} is not a whole number (or 'unlimited')") from None
        if number < 0 or number != int(number):
            raise RequestError(name, f"{value!r} must be a whole number ≥ 0 (or 'unlimited')")
        return int(number)
    raise RequestError(name, "unknown policy field")


@dataclass(frozen=True)
class PolicySpec:
    """One level of policy (default, a group, or a user). ``None`` = not set here."""

    max_cpu: float | None = None  #: cores per kernel/server
    max_mem: float | None = None  #: bytes per kernel/server
    max_gpu: float | None = None  #: GPU share per kernel/server
    max_pids: float | None = None
    total_cpu: float | None = None  #: cores across a user's running kernels and servers
    total_mem: float | None = None
    total_gpu: float | None = None
    max_kernels: float | None = None  #: concurrent kernels (servers not counted)
    allowed_images: tuple[str, ...] | None = None  #: glob patterns; None = every offered image
    idle_timeout: float | None = None  #: seconds; 0 or unlimited = never culled
    max_lifetime: float | None = None  #: seconds
    default: Mapping[str, Any] | None = None  #: default request (partial, e.g. {"cpu": 1})
    #: what the group's members may hold together (group policies only; see ``group_totals``)
    group_totals: GroupTotals | None = None
    budget: Budget | None = None  #: per member (or this user) and period; see ``budgets``
    group_budget: Budget | None = None  #: for the group's members together (group policies only)
    idle_cpu: IdleRule | None = None  #: cull below this CPU use for a period; see ``idle_rules``
    idle_gpu: IdleRule | None = None  #: cull below this GPU utilization for a period
    on_full: str | None = None  #: a kernel start when there is no room right now: "refuse" or "queue"
    queue_timeout: float | None = None  #: seconds a queued start may wait (default 300)

    @classmethod
    def parse(cls, data: Mapping[str, Any] | None, where: str = "policy") -> PolicySpec:
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise RequestError(
                f"{where}.{unknown[0]}", f"unknown policy field; known fields are {', '.join(sorted(known))}"
            )
        values: dict[str, Any] = {}
        for name, value in data.items():
            if name == "allowed_images":
                if value is None:
                    continue
                if isinstance(value, str):
                    value = [value]
                if not all(isinstance(v, str) and v for v in value):
                    raise RequestError(f"{where}.allowed_images", "expected a list of image names or glob patterns")
                values[name] = tuple(value)
            elif name in ("group_totals", "group_budget"):
                if where.startswith(("default", "user")):
                    raise RequestError(
                        f"{where}.{name}", f"only a group policy may set {name} (it applies to the group as a whole)"
                    )
                parse = GroupTotals.parse if name == "group_totals" else Budget.parse
                values[name] = parse(value, f"{where}.{name}")
            elif name == "budget":
                values[name] = Budget.parse(value, f"{where}.budget")
            elif name == "on_full":
                if value not in (None, "refuse", "queue"):
                    raise RequestError(f"{where}.on_full", f"{value!r} is not a choice; expected 'refuse' or 'queue'")
                values[name] = value
            elif name in ("idle_cpu", "idle_gpu"):
                values[name] = IdleRule.parse(value, f"{where}.{name}")
            elif name == "default":
                if value is not None:
                    Resources.parse(value)  # validate now, so a bad config fails at start
                    values[name] = dict(value)
            else:
                try:
                    values[name] = _parse_limit(name, value)
                except RequestError as e:
                    raise RequestError(f"{where}.{name}", e.message.split(": ", 1)[-1]) from None
        return cls(**values)

    def to_json(self) -> dict:
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None:
                continue
            if isinstance(v, float) and math.isinf(v):
                v = "unlimited"
            elif isinstance(v, tuple):
                v = list(v)
            elif isinstance(v, (GroupTotals, Budget, IdleRule)):
                v = v.to_json()
            out[f.name] = v
        return out


#: Values used when no level sets a field.
BUILTIN = PolicySpec(
    max_cpu=UNLIMITED,
    max_mem=UNLIMITED,
    max_gpu=0.0,
    max_pids=4096,
    total_cpu=UNLIMITED,
    total_mem=UNLIMITED,
    total_gpu=0.0,
    max_kernels=UNLIMITED,
    allowed_images=None,
    idle_timeout=0,
    max_lifetime=0,
    default={},
)


def _more_generous(name: str, a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    if name == "allowed_images":
        return tuple(dict.fromkeys(a + b))
    if name in ("budget", "idle_cpu", "idle_gpu"):
        return a.merged(b)
    if name == "on_full":
        return "queue" if "queue" in (a, b) else a
    if name == "default":
        merged = dict(a)
        for key, value in b.items():
            merged[key] = (
                value
                if key not in merged
                else max(
                    Resources.parse({key: merged[key]}).to_dict()[key_name(key)],
                    Resources.parse({key: value}).to_dict()[key_name(key)],
                )
            )
        return merged
    if name in ("idle_timeout", "max_lifetime"):
        # 0 means "never": that is the most generous.
        if a == 0 or b == 0:
            return 0
    return max(a, b)


def key_name(key: str) -> str:
    from .resources import ALIASES

    return ALIASES.get(key, key)


@dataclass(frozen=True)
class EffectivePolicy:
    """The resolved policy for one user: every field set."""

    user: str
    groups: tuple[str, ...]
    spec: PolicySpec
    sources: Mapping[str, str] = field(default_factory=dict)  #: field → "user", "group:NAME", "default", "builtin"
    #: ``{group: GroupTotals}`` of the user's groups that cap their members together (admission checks them)
    group_totals: Mapping[str, GroupTotals] = field(default_factory=dict)
    #: ``{group: Budget}`` of the user's groups with a ``group_budget`` (shared by the members)
    group_budgets: Mapping[str, Budget] = field(default_factory=dict)

    def __getattr__(self, name):  # delegate fields to spec
        if name in {f.name for f in fields(PolicySpec)}:
            return getattr(self.spec, name)
        raise AttributeError(name)

    def default_request(self, base: Resources | None = None) -> Resources:
        return Resources.parse(self.spec.default or {}, base=base)

    def image_allowed(self, image: str) -> bool:
        patterns = self.spec.allowed_images
        return patterns is None or any(fnmatch.fnmatchcase(image, p) for p in patterns)

    def check(self, request: Resources, *, explicit: bool = True, image: str | None = None) -> Resources:
        """Check one kernel's request against the per-kernel limits.

        An ``explicit`` request (the user typed these numbers) over a limit is
        refused with a :class:`PolicyError` naming the limit and the excess; a
        request derived from defaults or presets is clamped to the limit instead.
        Totals across running kernels are checked by admission, which sees the
        ledger.
        """
        if image is not None and not self.image_allowed(image):
            raise PolicyError(
                f"your policy does not allow the image {image!r}; allowed: {', '.join(self.spec.allowed_images)}",
                limit="allowed_images",
            )
        clamped = {}
        for fname, limit_name, fmt in (
            ("cpu", "max_cpu", lambda v: f"{v:g} CPU"),
            ("mem", "max_mem", format_bytes),
            ("gpu", "max_gpu", lambda v: f"{v:g} GPU"),
            ("pids", "max_pids", lambda v: f"{v:g} processes"),
        ):
            asked = getattr(request, fname)
            limit = getattr(self.spec, limit_name)
            if limit is None or asked <= limit:
                continue
            if explicit:
                raise PolicyError(
                    f"{fname}: you asked for {fmt(asked)} per kernel but your policy allows at most "
                    f"{fmt(limit)} ({fmt(asked - limit)} over the {limit_name} limit, set by "
                    f"{self.sources.get(limit_name, 'policy')}); ask for {fmt(limit)} or less",
                    limit=limit_name,
                )
            clamped[fname] = int(limit) if fname in ("mem", "pids") else limit
        return request.replace(**clamped) if clamped else request

    def to_json(self) -> dict:
        out = {"user": self.user, "groups": list(self.groups), **self.spec.to_json(), "sources": dict(self.sources)}
        if self.group_totals:
            out["group_totals"] = {g: t.to_json() for g, t in self.group_totals.items()}
        if self.group_budgets:
            out["group_budgets"] = {g: b.to_json() for g, b in self.group_budgets.items()}
        return out


def resolve(
    user: str,
    groups: Iterable[str],
    default: PolicySpec | None = None,
    group_specs: Mapping[str, PolicySpec] | None = None,
    user_specs: Mapping[str, PolicySpec] | None = None,
) -> EffectivePolicy:
    """Combine the default, the user's groups and the user's own entry (see module doc)."""
    groups = tuple(sorted(set(groups)))
    group_specs = group_specs or {}
    user_specs = user_specs or {}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    per_group = ("group_totals", "group_budget")  # each group's own, never merged
    names = [f.name for f in fields(PolicySpec) if f.name not in per_group]
    for name in names:
        v = getattr(BUILTIN, name)
        values[name], sources[name] = v, "builtin"
        if default is not None and getattr(default, name) is not None:
            values[name], sources[name] = getattr(default, name), "default"
        best, best_src = None, None
        for g in groups:
            spec = group_specs.get(g)
            if spec is None or getattr(spec, name) is None:
                continue
            merged = _more_generous(name, best, getattr(spec, name))
            if merged != best:
                best_src = f"group {g}" if best is None or merged == getattr(spec, name) else f"{best_src}+{g}"
            best = merged
        if best is not None:
            values[name], sources[name] = best, best_src
        uspec = user_specs.get(user)
        if uspec is not None and getattr(uspec, name) is not None:
            values[name], sources[name] = getattr(uspec, name), f"user {user}"
    totals = {g: group_specs[g].group_totals for g in groups if g in group_specs and group_specs[g].group_totals}
    budgets = {g: group_specs[g].group_budget for g in groups if g in group_specs and group_specs[g].group_budget}
    return EffectivePolicy(
        user=user, groups=groups, spec=PolicySpec(**values), sources=sources, group_totals=totals, group_budgets=budgets
    )
