"""``berth engine up`` and ``berth engine status``: the container engine.

``up`` uses a Docker engine that answers, or (root on Debian/Ubuntu) installs
``docker.io`` and starts ``dockerd`` in the background; see
:func:`jupyter_berth.engine.ensure_engine`. ``status`` only looks.
"""

from __future__ import annotations

from traitlets import Float
from traitlets.config import Application

from .._version import __version__
from ..engine import engine_address, engine_client, ensure_engine
from ..imagebuild.baseimage import LABEL_PREFIX
from .command import BerthCommand


class BerthCommandApp(Application):
    """Base of berth's leaf subcommands: a parent app that only dispatches."""

    version = __version__

    def start(self):
        if self.subapp is None:
            print(f"{self.name}: a subcommand is required\n")
            self.print_subcommands()
            self.exit(1)
        return self.subapp.start()


class EngineUpApp(BerthCommand):
    """Use the running Docker engine, or install and start one."""

    name = "berth engine up"
    version = __version__
    description = """Make sure a Docker engine answers (DOCKER_HOST or the default socket).

    If none answers and this is root on Debian or Ubuntu: install Debian's
    docker.io when dockerd is missing, start dockerd in the background (log in
    /var/log/berth-dockerd.log) and wait until it answers. Never pulls an image.
    """
    examples = "berth engine up\nberth engine up --wait=120"

    wait = Float(60, help="Seconds to wait for a freshly started dockerd to answer.").tag(config=True)
    aliases = {"wait": "EngineUpApp.wait"}

    def start(self):
        status = ensure_engine(log=lambda line: print(line, flush=True), wait=self.wait)
        print(f"engine: Docker {status.version} at {status.address} ({status.how})")
        if status.log_path:
            print(f"dockerd log: {status.log_path}")


class EngineStatusApp(BerthCommand):
    """Show whether the engine answers and what it holds for berth."""

    name = "berth engine status"
    version = __version__
    description = "Show the Docker engine's version, drivers and berth's images and containers."

    def start(self):
        client = engine_client(timeout=10)
        info = client.info()
        images = client.images.list(filters={"label": LABEL_PREFIX + "kind"})
        containers = client.containers.list(filters={"label": LABEL_PREFIX + "kernel_id"})
        print(f"engine:      Docker {info.get('ServerVersion', '?')} at {engine_address()}")
        print(
            f"storage:     {info.get('Driver', '?')}, cgroup {info.get('CgroupVersion', '?')} "
            f"({info.get('CgroupDriver', '?')})"
        )
        print(f"host:        {info.get('NCPU', '?')} CPUs, {info.get('MemTotal', 0) / 2**30:.1f} GiB")
        print(f"berth:       {len(images)} image(s), {len(containers)} running kernel container(s)")


class EngineApp(BerthCommandApp):
    """``berth engine``: parent of ``up`` and ``status``."""

    name = "berth engine"
    description = "Start or check the container engine (Docker)."
    subcommands = {
        "up": (EngineUpApp, "Use the running Docker engine, or install and start one."),
        "status": (EngineStatusApp, "Show whether the engine answers and what it holds for berth."),
    }
