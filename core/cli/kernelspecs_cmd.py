"""``berth kernelspecs sync|list``: kernelspecs for the offered images and presets."""

from __future__ import annotations

import asyncio

from traitlets import Unicode
from traitlets.config import Application

from ..runtime.docker import DockerRuntime
from ..service import BerthService
from .command import BerthCommand


class KernelspecsSyncApp(BerthCommand):
    name = "berth kernelspecs sync"
    description = "Write one kernelspec per offered image version and per preset; remove stale Berth kernelspecs."
    kernels_dir = Unicode(
        None, allow_none=True, config=True, help="Where to write (default: the Jupyter data dir's kernels/)."
    )
    aliases = {"kernels-dir": "KernelspecsSyncApp.kernels_dir"}
    classes = [BerthService]

    def start(self):
        from jupyter_berth.kernelspecs import sync_from_service

        async def run():
            service = BerthService(parent=self, runtime=DockerRuntime())
            await service.open()  # the catalog's decisions are in the ledger (created here on a fresh install)
            try:
                return await sync_from_service(service, self.kernels_dir)
            finally:
                await service.close()

        result = asyncio.run(run())
        for key in ("written", "unchanged", "removed"):
            for name in result[key]:
                print(f"{key:>9}  {name}")
        print(
            f"kernelspecs in {result['dir']}: {len(result['written'])} written, "
            f"{len(result['unchanged'])} unchanged, {len(result['removed'])} removed"
        )


class KernelspecsApp(Application):
    name = "berth kernelspecs"
    description = "Manage Berth kernelspecs."
    subcommands = {"sync": (KernelspecsSyncApp, KernelspecsSyncApp.description)}

    def start(self):
        if self.subapp is None:
            self.print_help()
            self.exit(1)
        return self.subapp.start()
