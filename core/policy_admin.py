"""Policies as the facade offers them: a user's effective policy and what is left of it, the user's
default profile (checked against it), and the policies an admin stores at run time (which override
the config file's entry of the same scope from the next request on, with no restart).

Functions of a :class:`~jupyter_berth.service.BerthService` (``s``); the facade's methods of the same
names call them.
"""

from __future__ import annotations

import asyncio
import math

from . import group_admission
from .images import catalog
from .policies import PolicySpec, resolve
from .resources import Resources, resource_kinds
from .usage.manager import quota_json


async def policy_for(s, user: str, groups=()):
    """Config policies overlaid with those an admin stored in the ledger at run time."""
    default, groups_cfg, users_cfg = s._policy_specs
    stored_default, stored_groups, stored_users = await s._db(s.ledger.get_policies)
    if stored_default:
        default = PolicySpec.parse(stored_default, "default_policy")
    groups_cfg = {**groups_cfg, **{g: PolicySpec.parse(v, f"group {g}") for g, v in stored_groups.items()}}
    users_cfg = {**users_cfg, **{u: PolicySpec.parse(v, f"user {u}") for u, v in stored_users.items()}}
    return resolve(user, groups, default, groups_cfg, users_cfg)


async def resolve_request(
    s, user: str, groups=(), *, request: dict | None = None, preset: str | None = None, image: str | None = None
):
    """A kernel's resources, image and policy: explicit > preset > profile > policy default (see
    :meth:`BerthService.resolve_request`); a derived request is clamped to the policy's limits."""
    explicit = bool(request)
    if preset or request:
        policy, profile = await s.policy_for(user, groups), None
    else:  # both reads at once: every default start (the warm pool's) waits for them
        policy, profile = await asyncio.gather(s.policy_for(user, groups), s._db(s.ledger.get_profile, user))
    base = policy.default_request()
    chosen_image = image
    if preset:
        p = s.preset(preset)
        base = p.resources
        chosen_image = chosen_image or p.image
    elif not request:
        if profile is not None:
            base = Resources.parse(profile.request or {}, base=base)
            chosen_image = chosen_image or profile.image
    resources = Resources.parse(request or {}, base=base)
    chosen_image = chosen_image or await s.images.default_image_ref()
    if not explicit:  # a derived request is clamped to the limits; admission refuses an explicit one over them
        resources = policy.check(resources, explicit=False)
    return resources, chosen_image, policy


def remaining(policy, used) -> dict:
    """What is left of the policy's totals given what is in use (``None``: no limit)."""

    def left(total, in_use):
        return None if total is None or math.isinf(total) else max(0, total - in_use)

    out = {k.name: left(getattr(policy, k.total_limit), used.get(k.name)) for k in resource_kinds() if k.total_limit}
    out["kernels"] = left(policy.max_kernels, used.kernels)
    return out


async def policy_summary(s, user: str, groups=()) -> dict:
    """The effective policy, what is in use and what is left (for the sidebar's bounds)."""
    policy = await s.policy_for(user, groups)
    used = await s.user_usage(user)
    groups_left = await s._db(group_admission.totals_summary, s.ledger, policy.group_totals)
    return {
        "policy": policy.to_json(),
        "usage": {**{k.name: used.get(k.name) for k in resource_kinds() if k.total_limit}, "kernels": used.kernels},
        "remaining": group_admission.narrow(remaining(policy, used), groups_left),  # the groups' totals bound it
        "group_totals": groups_left,
        "default_request": policy.default_request().to_dict(),
    }


async def my_usage(s, user: str, since=None, until=None, *, groups=(), by="day") -> dict:
    """``{"user", "window", "by", "rows", "totals", "quota": {"limits", "in_use", "remaining"}, ...}``;
    memory in bytes, ``None`` where the policy sets no limit (as ``policy_summary``)."""
    report = await s.usage.usage_report(since, until, by, user=user)
    summary = await s.policy_summary(user, groups)
    return {"user": user, **report.to_json(), "quota": quota_json(summary)}


def config_policies(s) -> dict:
    return {
        "default": dict(s.default_policy or {}),
        "groups": dict(s.group_policies or {}),
        "users": dict(s.user_policies or {}),
    }


async def get_policies(s, scope: str | None = None, name: str | None = None) -> dict:
    """Every policy, ``{"config": …, "stored": …}``; or one scope's (``default``, ``group`` or ``user`` + name)."""
    default, groups, users = await s._db(s.ledger.get_policies)
    config = config_policies(s)
    if scope is None:
        return {"config": config, "stored": {"default": default, "groups": groups, "users": users}}
    if scope == "default":
        return {"stored": default, "config": config["default"] or None}
    return {"stored": {"group": groups, "user": users}[scope].get(name), "config": config[scope + "s"].get(name)}


async def set_policy(s, scope: str, name: str | None, spec: dict, *, by: str | None = None) -> dict:
    """Store a policy (validated: a bad field is a RequestError naming it); the stored JSON."""
    return await s._db(s.ledger.set_policy, scope, name, spec, by=by)


async def delete_policy(s, scope: str, name: str | None = None) -> bool:
    """Delete a stored policy (the config file's entry applies again); ``False`` if none was stored."""
    return await s._db(s.ledger.delete_policy, scope, name)


async def get_profile(s, user: str) -> dict:
    """The user's default profile (the request and image a start without parameters gets)."""
    profile = await s._db(s.ledger.get_profile, user)
    return {"request": dict(profile.request), "image": profile.image} if profile else {"request": {}, "image": None}


async def set_profile(s, user: str, groups=(), *, request: dict | None, image: str | None) -> dict:
    """Save the user's default profile, after checking it would start (policy and image)."""
    resources = Resources.parse(request or {})
    policy = await s.policy_for(user, groups)
    policy.check(resources, explicit=True, image=image or s.default_image)
    if image:
        catalog.find(await s.images.catalog_view(), image)
    await s._db(s.ledger.set_profile, user, request or {}, image=image)
    return await get_profile(s, user)
