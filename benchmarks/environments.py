#!/usr/bin/env python3
"""Environments: cold start to the first reply per language, against the same kernel on the host,
and how long inspecting an image takes when it is offered.

For each language — Python (a plain stack image, berth/scipy:2025.1, through the mounted launcher),
R (berth/r:4.2, IRkernel) and Bash (berth/bash:5.2, bash_kernel) — one run measures the time from
``AsyncKernelManager.start_kernel`` to the first ``kernel_info_reply``:

* **berth** — a Berth kernel, its container created for the request (no warm pool: these images
  run through the launcher Berth mounts);
* **local** — the same kernel started on the host by jupyter_client's default provisioner
  (ipykernel, Debian's IRkernel, bash_kernel), in the same run.

Languages and kinds are interleaved round by round, one kernel at a time, each shut down before the
next. Inspection: ``EnvironmentManager.discover`` (one short-lived container: kernelspecs, versions,
a smoke start of each kernel) timed ``--inspect`` times per image.

Usage::

    python benchmarks/environments.py [--n 10] [--inspect 3]

Needs the Docker engine, the images (``berth images bootstrap --all``) and, for the local side,
``apt-get install r-base-core r-cran-irkernel`` and ``pip install bash_kernel`` on the host.
Writes ``benchmarks/results/environments.json`` and the ``environments`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

from doc_sections import replace_section  # benchmarks/doc_sections.py (scripts run from this folder)
from kernel_start import summary  # the same percentile summary as the kernel start benchmark

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results", "environments.json")
DOC = os.path.join(ROOT, "docs", "benchmarks.md")
BEGIN, END = "<!-- environments:begin -->", "<!-- environments:end -->"
#: language → (recipe, image, kernel inside the image, local kernelspec)
LANGUAGES = {
    "Python": ("scipy-2025", "berth/scipy:2025.1", "python3", "python3"),
    "R": ("r", "berth/r:4.2", "ir", "ir"),
    "Bash": ("bash", "berth/bash:5.2", "bash", "bash"),
}
REQUEST = {"cpu": 1, "mem": "1G"}


async def first_reply(name: str, env: dict, cwd: str) -> float:
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    km = AsyncKernelManager(kernel_name=name, kernel_spec_manager=KernelSpecManager())
    t0 = time.perf_counter()
    await km.start_kernel(cwd=cwd, env=env)
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=120)
        return time.perf_counter() - t0
    finally:
        kc.stop_channels()
        await km.shutdown_kernel(now=True)


async def main(n: int, inspect_n: int) -> dict:
    from traitlets.config import Config

    from jupyter_berth.imagebuild.environments import bootstrap_environment
    from jupyter_berth.kernels import backend
    from jupyter_berth.kernelspecs import plan, sync
    from jupyter_berth.runtime.docker import DockerRuntime
    from jupyter_berth.service import BerthService

    tmp = tempfile.mkdtemp(prefix="berth-bench-env-")
    os.chmod(tmp, 0o755)
    work = os.path.join(tmp, "work")
    os.makedirs(work)
    os.chmod(work, 0o777)
    jupyter = os.path.join(tmp, "jupyter")
    os.environ["JUPYTER_PATH"] = jupyter
    # the local Bash kernel's kernelspec (bash_kernel installs one where it is told)
    subprocess.run(
        [sys.executable, "-m", "bash_kernel.install", "--prefix", os.path.join(tmp, "prefix")],
        check=True,
        capture_output=True,
    )
    shutil.copytree(os.path.join(tmp, "prefix", "share", "jupyter", "kernels"), os.path.join(jupyter, "kernels"))
    c = Config()
    c.BerthService.data_dir = os.path.join(tmp, "data")
    c.UsageTracker.sample_interval = 0
    c.ImageCatalog.offer_new_images = False
    c.ImageCatalog.admin_users = {"bench"}
    c.BerthService.default_policy = {"max_cpu": 2, "max_mem": "4G", "default": REQUEST}
    service = BerthService(config=c, runtime=DockerRuntime())
    await service.start()
    backend._service = service
    out: dict = {"inspect": {}, "start": {}, "versions": {}}
    try:
        for lang, (recipe, image, kernel, _local) in LANGUAGES.items():
            await asyncio.to_thread(bootstrap_environment, recipe, progress=lambda _l: None)
            times = []
            for _ in range(inspect_n):
                t0 = time.perf_counter()
                found = await service.environments.discover(image)
                times.append(time.perf_counter() - t0)
            out["inspect"][lang] = {"image": image, **summary(times)}
            k = found.kernel(kernel)
            out["versions"][lang] = k.describe()
            await service.images.offer_image("bench", (), image)
        specs = plan(await service.images.catalog_view(), service.preset_list, service.default_image)
        sync(specs, os.path.join(jupyter, "kernels"))
        berth_names = {
            lang: f"berth-{image.replace('berth/', '').replace(':', '-')}-{kernel}"
            for lang, (_r, image, kernel, _l) in LANGUAGES.items()
        }
        samples = {lang: {"berth": [], "local": []} for lang in LANGUAGES}
        env = {"BERTH_REQUEST": json.dumps(REQUEST)}
        for lang in LANGUAGES:  # one untimed start each, so that the first round pays no first-use costs
            await first_reply(berth_names[lang], env, work)
            await first_reply(LANGUAGES[lang][3], {}, work)
        for _ in range(n):
            for lang in LANGUAGES:
                samples[lang]["berth"].append(await first_reply(berth_names[lang], env, work))
                samples[lang]["local"].append(await first_reply(LANGUAGES[lang][3], {}, work))
        for lang, kinds in samples.items():
            out["start"][lang] = {kind: summary(values) for kind, values in kinds.items()}
    finally:
        backend._service = None
        for alloc in await service.list_kernels():
            await service.stop_kernel(alloc.owner, alloc.subject, now=True)
        await service.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def write_doc(result: dict, command: str) -> None:
    lines = [
        BEGIN,
        "## Environments: cold start per language, and inspection at offer",
        "",
        f"Measured {result['date']} on {result['machine']} with `{command}` "
        f"({result['n']} starts per language and kind, interleaved; {result['inspect_n']} inspections per image). "
        "Time from `start_kernel` to the first `kernel_info_reply`; **berth** is a Berth kernel in a new "
        "container of a plain image, started through the mounted launcher (no warm pool), **local** the "
        f"same kernel on the host. Berth kernels run with their request ({REQUEST['cpu']} CPU, {REQUEST['mem']}), "
        "local ones unbounded on the host's cores (part of R's difference may be that limit; not measured apart).",
        "",
        "| language | image, kernel | berth p50 | berth p95 | local p50 | local p95 | berth − local (p50) |",
        "|---|---|---|---|---|---|---|",
    ]
    for lang, kinds in result["start"].items():
        b, loc = kinds["berth"], kinds["local"]
        lines.append(
            f"| {lang} | {result['inspect'][lang]['image']}: {result['versions'][lang]} | {b['p50']:.2f} s | "
            f"{b['p95']:.2f} s | {loc['p50']:.2f} s | {loc['p95']:.2f} s | {b['p50'] - loc['p50']:+.2f} s |"
        )
    lines += [
        "",
        "Inspection when an image is offered (one short-lived container with no network: kernelspecs, "
        "interpreter and framework versions, a smoke start of every kernel found):",
        "",
        "| image | p50 | max |",
        "|---|---|---|",
    ]
    for lang, r in result["inspect"].items():
        lines.append(f"| {r['image']} ({lang}) | {r['p50']:.2f} s | {r['max']:.2f} s |")
    lines += ["", END]
    replace_section(DOC, BEGIN, END, "\n".join(lines))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--inspect", type=int, default=3)
    args = parser.parse_args()
    result = asyncio.run(main(args.n, args.inspect))
    result.update(
        date=time.strftime("%Y-%m-%d"),
        machine=f"{platform.machine()}, {os.cpu_count()} cores",
        n=args.n,
        inspect_n=args.inspect,
    )
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(result, f, indent=1)
    write_doc(result, f"python benchmarks/environments.py --n {args.n} --inspect {args.inspect}")
    print(json.dumps({k: result[k] for k in ("start", "inspect")}, indent=1))
