"""What a user may run as a job: the images their policy allows and the presets that fit it.

One rule for every front end: the Create-job dialog standalone (the embedded service) and in hub
mode (``GET berth/api/job-environments`` of the hub's service), so that a dialog never offers what
the submit would refuse.
"""

from __future__ import annotations

from ..errors import BerthError


async def job_offer(service, user: str, groups=()) -> dict:
    """``{"images": [...], "presets": [...], "default_request": "<resources in words>"}`` for ``user``."""
    policy = await service.policy_for(user, groups)
    images = [
        {
            "ref": info.ref,
            "display_name": info.labels.get("display_name") or info.ref,
            "language": info.labels.get("language", ""),
            "digest": info.digest or "",
            "default": bool(info.default),
        }
        for info in await service.images.catalog_view()
        if policy.image_allowed(info.ref)
    ]
    presets = []
    for p in service.preset_list:
        try:
            policy.check(p.resources, explicit=True, image=p.image)
        except BerthError:
            continue  # over the user's policy: not offered
        presets.append({"name": p.name, "display_name": p.display_name, "limits": p.resources.describe()})
    return {"images": images, "presets": presets, "default_request": policy.default_request().describe()}


__all__ = ["job_offer"]
