"""What a job's start needs, resolved once (at submission, or again when a restarted service resumes a
queued job): owner, resources, image, policy and folder mounts, and admission's reservation for it."""

from __future__ import annotations

from dataclasses import dataclass

from .. import allocation_plan
from ..resources import Resources
from ..runtime.base import Mount


@dataclass(frozen=True)
class JobStart:
    """A job's admitted shape: what it reserves and what its container gets."""

    owner: str
    groups: tuple[str, ...]
    resources: Resources
    image: str
    info: object  # the image's catalog entry (its id and digest)
    policy: object  # the owner's EffectivePolicy
    mounts: list[Mount]

    def reserve_call(self, s, job_id: str):
        """Admission's reservation of an allocation of kind ``job`` (blocking; pass ``queue_id=``)."""
        return allocation_plan.reserve_call(
            s, owner=self.owner, groups=self.groups, policy=self.policy, request=self.resources, kind="job",
            subject=job_id, image=self.image,
        )  # fmt: skip
