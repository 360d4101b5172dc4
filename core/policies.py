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
from .resources import KINDS, ResourceKind, Resources, resource_kinds

UNLIMITED = math.inf

#: Policy fields that are whole numbers of something other than a resource (counts, seconds).
COUNT_FIELDS = ("max_kernels", "idle_timeout", "max_lifetime", "queue_timeout")
#: Fields each group keeps for itself (never merged across groups; group policies only).
PER_GROUP_FIELDS = ("group_totals", "group_budget")


def limit_kind(name: str) -> ResourceKind | None:
    """The resource kind a limit field bounds (``max_mem`` → mem), ``None`` for other fields."""
    return next((k for k in KINDS.values() if name in (k.max_limit, k.total_limit)), None)


def limit_names() -> list[str]:
    """Every per-kernel and total limit the registered resource kinds have."""
    return [n for k in KINDS.values() for n in (k.max_limit, k.total_limit) if n]


def _parse_limit(name: str, value: Any) -> float:
    if value is None:
        return None
    if value == "unlimited" or (isinstance(value, float) and math.isinf(value)):
        return UNLIMITED
    kind = limit_kind(name)
    if kind is not None:
        if value in (0, "0") and kind.max_builtin == 0:  # a kind that may be forbidden (GPU)
            return 0.0
        return kind.parse(value, name)
    if name in COUNT_FIELDS:
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
    #: ``((field, value), …)``: the limits of registered resource kinds beyond the fields above
    limits: tuple[tuple[str, float | None], ...] = ()

    def __getattr__(self, name):  # a limit of a registered kind beyond the built-in fields
        if name.startswith("_") or name not in limit_names():
            raise AttributeError(name)
        return dict(self.limits).get(name)

    @classmethod
    def parse(cls, data: Mapping[str, Any] | None, where: str = "policy") -> PolicySpec:
        data = dict(data or {})
        known = set(policy_fields())
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
            elif name == "default":
                if value is not None:
                    Resources.parse(value)  # validate now, so a bad config fails at start
                    values[name] = dict(value)
            elif name in PER_GROUP_FIELDS:
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
            else:
                try:
                    values[name] = _parse_limit(name, value)
                except RequestError as e:
                    raise RequestError(f"{where}.{name}", e.message.split(": ", 1)[-1]) from None
        return cls.make(values)

    @classmethod
    def make(cls, values: Mapping[str, Any]) -> PolicySpec:
        """From ``{field: value}``, the limits of registered kinds beyond the built-in fields included."""
        own = {f.name for f in fields(cls)}
        extra = tuple(sorted((n, v) for n, v in values.items() if n not in own))
        return cls(**{n: v for n, v in values.items() if n in own}, limits=extra)

    def to_json(self) -> dict:
        out = {}
        for name in policy_fields():
            v = getattr(self, name)
            if v is None:
                continue
            if isinstance(v, float) and math.isinf(v):
                v = "unlimited"
            elif isinstance(v, tuple):
                v = list(v)
            elif isinstance(v, (GroupTotals, Budget, IdleRule)):
                v = v.to_json()
            out[name] = v
        return out


def policy_fields() -> list[str]:
    """Every policy field: the built-in ones and the limits of every registered resource kind."""
    own = [f.name for f in fields(PolicySpec) if f.name != "limits"]
    return own + [n for n in limit_names() if n not in own]


def builtin_value(name: str) -> Any:
    """A field's value when no level sets it: a resource limit's from the registry, others from :data:`BUILTIN`."""
    kind = limit_kind(name)
    if kind is not None:
        return kind.max_builtin if name == kind.max_limit else kind.total_builtin
    return getattr(BUILTIN, name)


#: Values used when no level sets a field (the resource limits: each kind's ``max_builtin``/``total_builtin``).
BUILTIN = PolicySpec.make(
    {
        **{n: builtin_value(n) for n in limit_names()},
        "max_kernels": UNLIMITED,
        "allowed_images": None,
        "idle_timeout": 0,
        "max_lifetime": 0,
        "default": {},
    }
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
        if not name.startswith("_") and name in policy_fields():
            return getattr(self.spec, name)
        raise AttributeError(name)

    def default_request(self, base: Resources | None = None) -> Resources:
        return Resources.parse(self.spec.default or {}, base=base)

    def image_allowed(self, image: str) -> bool:
        patterns = self.spec.allowed_images
        return patterns is None or any(fnmatch.fnmatchcase(image, p) for p in patterns)

    def check(
        self,
        request: Resources,
        *,
        explicit: bool | Iterable[str] = True,
        image: str | None = None,
        subject: str = "kernel",
    ) -> Resources:
        """Check one kernel's or server's request against the per-kernel/server limits: the one check.

        Admission calls it when it reserves, the spawn form when it validates, so a request the
        form accepts is one admission accepts. An ``explicit`` request (the user typed these
        numbers; or the names of the kinds they typed) over a limit is refused with a
        :class:`PolicyError` naming the limit and the excess; a value derived from defaults or
        presets is clamped to the limit instead. Totals across running kernels and servers are
        checked by admission, which sees the ledger (``admission.check_totals``).
        """
        if image is not None and not self.image_allowed(image):
            raise PolicyError(
                f"your policy does not allow the image {image!r}; allowed: {', '.join(self.spec.allowed_images)}",
                limit="allowed_images",
            )
        typed = None if isinstance(explicit, bool) else set(explicit)
        clamped = {}
        for kind in resource_kinds():
            if kind.max_limit is None:
                continue
            asked, limit = getattr(request, kind.name), getattr(self.spec, kind.max_limit)
            if limit is None or asked <= limit * (1 + 1e-9):
                continue
            if explicit is True or (typed is not None and kind.name in typed):
                raise PolicyError(self._over(kind, asked, limit, subject), limit=kind.max_limit)
            clamped[kind.name] = kind.value(limit)
        return request.replace(**clamped) if clamped else request

    def _over(self, kind: ResourceKind, asked: float, limit: float, subject: str) -> str:
        fmt, name, source = kind.format, kind.max_limit, self.sources.get(kind.max_limit, "policy")
        if limit == 0:
            return (
                f"{kind.name}: your policy allows no {kind.word} for a {subject} ({name} is 0, set by {source}); "
                "ask for 0"
            )
        per = "for your server" if subject == "server" else f"per {subject}"
        return (
            f"{kind.name}: you asked for {fmt(asked)} {per} but your policy allows at most {fmt(limit)} "
            f"({fmt(asked - limit)} over the {name} limit, set by {source}); ask for {fmt(limit)} or less"
        )

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
    for name in (n for n in policy_fields() if n not in PER_GROUP_FIELDS):
        v = builtin_value(name)
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
        user=user,
        groups=groups,
        spec=PolicySpec.make(values),
        sources=sources,
        group_totals=totals,
        group_budgets=budgets,
    )
