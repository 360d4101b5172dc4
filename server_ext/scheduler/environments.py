"""The Create-job dialog's choices: Berth image versions as environments, presets as compute types."""

from __future__ import annotations

from jupyter_scheduler.environments import EnvironmentManager
from jupyter_scheduler.models import RuntimeEnvironment

from jupyter_berth.errors import BerthError

from .backend import jobs_backend

#: The compute type that takes the user's profile or the policy's default resources.
DEFAULT_COMPUTE = "default"
OUTPUT_FORMATS = {"ipynb": "Notebook", "html": "HTML"}


def environments(offer: dict) -> list[RuntimeEnvironment]:
    """One environment per image version the user may run; compute types: the presets within their policy."""
    presets = offer["presets"]
    compute = [DEFAULT_COMPUTE] + [p["name"] for p in presets]
    sizes = "; ".join(f"{p['name']}: {p['limits']}" for p in presets)
    out = []
    for image in sorted(offer["images"], key=lambda i: (not i["default"], i["ref"])):
        described = f"{image['display_name']} ({image['ref']}) in its own Berth container"
        sizes_text = f"; default: {offer['default_request']}" + (f"; {sizes}" if sizes else "")
        out.append(
            RuntimeEnvironment(
                name=image["ref"],
                label=image["display_name"] if image["display_name"] != image["ref"] else image["ref"],
                description=described + sizes_text,
                file_extensions=["ipynb"],
                output_formats=list(OUTPUT_FORMATS),
                metadata={"image": image["ref"], "digest": image["digest"], "language": image["language"]},
                compute_types=compute,
                default_compute_type=DEFAULT_COMPUTE,
                utc_only=False,
            )
        )
    return out


class BerthEnvironmentManager(EnvironmentManager):
    """``c.SchedulerApp.environment_manager_class``: the Berth environments within the user's policy.

    jupyter-scheduler builds it without arguments; :class:`~.scheduler.BerthScheduler` hands it the
    server's configuration (:meth:`bind`), so it reaches the same embedded service as the kernels.
    """

    config = None
    parent = None

    def bind(self, config, parent=None) -> None:
        self.config, self.parent = config, parent

    async def list_environments(self) -> list[RuntimeEnvironment]:
        if self.config is None:
            raise BerthError(
                "BerthEnvironmentManager needs BerthScheduler: set c.SchedulerApp.scheduler_class = "
                "'jupyter_berth.server.scheduler.BerthScheduler'"
            )
        return environments(await (await jobs_backend(config=self.config, parent=self.parent)).offer())

    def manage_environments_command(self) -> str:
        return ""

    def output_formats_mapping(self) -> dict[str, str]:
        return dict(OUTPUT_FORMATS)
