#!/usr/bin/env python3
"""Kernel start as a user meets it: the synchronous ``jupyter_client.KernelManager`` by kernelspec name.

Start → first ``kernel_info_reply``, one run, the kinds interleaved round by round, each kind in
its own long-lived worker process (as nbclient and many clients run kernels):

* **local** — ipykernel from a lean virtualenv (``~/.cache/berth-bench/lean``: only ipykernel),
  the baseline;
* **berth** — Berth's default kernelspec (``berth-python-3.11``) with default settings, i.e. the
  warm pool on (the embedded service starts with the worker's first kernel);
* **cold** — the same with ``c.BerthService.pool_size = 0``;
* **gateway** — gateway_provisioners' ``DockerProvisioner`` (when it is installed:
  ``pip install gateway_provisioners[docker]``) with an image built from the same
  ``berth/python:3.11`` plus its kernel launchers and ``pycryptodomex`` (no limits at all).

Every Berth object carries ``bench_run=<id>`` (``$BERTH_EXTRA_LABELS``) and is removed at the end.

Usage::

    python benchmarks/kernel_start_sync.py [--n 15]

Writes ``benchmarks/results/kernel_start_sync.json`` and the ``kernel_start_sync`` section of
``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from doc_sections import replace_section

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DOC = os.path.join(ROOT, "docs", "benchmarks.md")
RESULTS = os.path.join(HERE, "results", "kernel_start_sync.json")
BEGIN, END = "<!-- kernel_start_sync:begin -->", "<!-- kernel_start_sync:end -->"
LEAN = os.path.expanduser("~/.cache/berth-bench/lean")
KINDS = ("local", "berth", "cold", "gateway")
GATEWAY_IMAGE = "berth-bench/gp-python:3.11"
GATEWAY_DOCKERFILE = """FROM berth/python:3.11
USER root
COPY kernel-launchers /usr/local/bin/kernel-launchers
RUN cp /usr/local/bin/kernel-launchers/bootstrap/bootstrap-kernel.sh /usr/local/bin/ \\
 && cp /usr/local/bin/kernel-launchers/shared/scripts/server_listener.py /usr/local/bin/kernel-launchers/python/scripts/ \\
 && chmod 0755 /usr/local/bin/bootstrap-kernel.sh && chmod -R a+rX /usr/local/bin/kernel-launchers
COPY certs/ /usr/local/share/ca-certificates/
COPY pip.conf /etc/pip.conf
RUN (update-ca-certificates || true) && /opt/venv/bin/pip install -q pycryptodomex
USER 1000:100
ENV KERNEL_LAUNCHERS_DIR=/usr/local/bin/kernel-launchers
CMD ["/usr/local/bin/bootstrap-kernel.sh"]
"""
TARGETS = {"berth": 0.1, "cold": 1.1}

WORKER = r"""
import sys, time
from jupyter_client import KernelManager
name = sys.argv[1]
for line in sys.stdin:
    t0 = time.perf_counter()
    km = KernelManager(kernel_name=name)
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    kc.kernel_info()
    while True:
        msg = kc.get_shell_msg(timeout=60)
        if msg["msg_type"] == "kernel_info_reply":
            break
    took = time.perf_counter() - t0
    kind = getattr(getattr(km, "provisioner", None), "launch", None)
    kc.stop_channels()
    km.shutdown_kernel(now=True)
    print(f"{took:.4f}", flush=True)
"""


def lean_venv() -> str:
    python = os.path.join(LEAN, "bin", "python")
    if not os.path.exists(python):
        subprocess.run([sys.executable, "-m", "venv", LEAN], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", "ipykernel"], check=True)
    return python


def gateway_dir() -> str | None:
    try:
        import gateway_provisioners
    except ImportError:
        return None
    return os.path.dirname(gateway_provisioners.__file__)


def gateway_image(tmp: str, gp: str) -> None:
    """The DockerProvisioner's image: berth/python:3.11 with its launchers (the build reaches the package
    index through the host's pip.conf and CA certificates)."""
    ctx = os.path.join(tmp, "gateway-image")
    shutil.copytree(os.path.join(gp, "kernel-launchers"), os.path.join(ctx, "kernel-launchers"))
    os.makedirs(os.path.join(ctx, "certs"))
    cas = "/usr/local/share/ca-certificates"
    for name in os.listdir(cas) if os.path.isdir(cas) else []:
        shutil.copy(os.path.join(cas, name), os.path.join(ctx, "certs"))
    if os.path.exists("/etc/pip.conf"):
        shutil.copy("/etc/pip.conf", ctx)
    else:
        open(os.path.join(ctx, "pip.conf"), "w").close()
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write(GATEWAY_DOCKERFILE)
    subprocess.run(
        ["docker", "build", "--network=host", "-q", "-t", GATEWAY_IMAGE, "--label", "io.jupyter.berth.bench=gateway", ctx],
        check=True, capture_output=True,
    )  # fmt: skip


def kernelspecs(data: str, python: str) -> None:
    """The lean local kernelspec and Berth's kernelspecs in a Jupyter data dir of this run."""
    local = os.path.join(data, "kernels", "lean-local")
    os.makedirs(local)
    argv = [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    with open(os.path.join(local, "kernel.json"), "w") as f:
        json.dump({"argv": argv, "display_name": "lean local", "language": "python"}, f)
    gp = gateway_dir()
    if gp:
        spec = os.path.join(data, "kernels", "gp-docker")
        os.makedirs(spec)
        launcher = os.path.join(gp, "kernel-launchers", "docker", "scripts", "launch_docker.py")
        argv = [sys.executable, launcher, "--kernel-id", "{kernel_id}", "--port-range", "{port_range}",
                "--response-address", "{response_address}", "--public-key", "{public_key}"]  # fmt: skip
        config = {"provisioner_name": "docker-provisioner", "config": {"image_name": GATEWAY_IMAGE}}
        with open(os.path.join(spec, "kernel.json"), "w") as f:
            json.dump({"argv": argv, "display_name": "gateway docker", "language": "python",
                       "metadata": {"kernel_provisioner": config}}, f)  # fmt: skip
    subprocess.run(
        [
            sys.executable,
            "-m",
            "jupyter_berth",
            "kernelspecs",
            "sync",
            f"--kernels-dir={os.path.join(data, 'kernels')}",
        ],
        check=True,
        capture_output=True,
    )


def worker(kind: str, tmp: str, data: str, labels: str):
    env = dict(os.environ, JUPYTER_PATH=data, BERTH_EXTRA_LABELS=labels, PYTHONUNBUFFERED="1")
    if kind == "gateway":  # its launcher copies the whole environment into the kernel's container: keep it small
        gw = subprocess.run(
            ["docker", "network", "inspect", "bridge", "-f", "{{(index .IPAM.Config 0).Gateway}}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()  # the kernel answers on the host's address on the engine's default bridge
        env = {"PATH": os.environ["PATH"], "HOME": tmp, "JUPYTER_PATH": data, "PYTHONUNBUFFERED": "1",
               "GP_RESPONSE_IP": gw, "KERNEL_USERNAME": "bench"}  # fmt: skip
    config = os.path.join(tmp, f"{kind}_config.py")
    with open(config, "w") as f:
        f.write(f"c.BerthService.data_dir = {os.path.join(tmp, kind + '-data')!r}\n")
        if kind == "cold":
            f.write("c.BerthService.pool_size = 0\n")
    env["BERTH_CONFIG"] = config
    cwd = os.path.join(tmp, kind + "-work")
    os.makedirs(cwd)
    os.chown(cwd, 1000, 100) if os.getuid() == 0 else None
    name = {"local": "lean-local", "gateway": "gp-docker"}.get(kind, "berth-python-3.11")
    code = "import json\n" + WORKER
    return subprocess.Popen(
        [sys.executable, "-c", code, name], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=cwd
    )


def remove_labelled(run: str) -> None:
    gateway = subprocess.run(["docker", "ps", "-aq", "--filter", "label=app=gateway-provisioners"],
                             capture_output=True, text=True).stdout.split()  # fmt: skip
    if gateway:
        subprocess.run(["docker", "rm", "-f", *gateway], capture_output=True)
    for what in ("container", "network", "volume"):
        ids = subprocess.run(
            ["docker", what, "ls", "-q", *(["-a"] if what == "container" else []), "--filter",
             f"label=io.jupyter.berth.bench_run={run}"],
            capture_output=True, text=True,
        ).stdout.split()  # fmt: skip
        if ids:
            subprocess.run(["docker", what, "rm", *(["-f"] if what != "network" else []), *ids], capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=15)
    ap.add_argument("--no-doc", action="store_true")
    ap.add_argument("--keep-image", action="store_true", help="keep the gateway image (else removed at the end)")
    args = ap.parse_args()
    run = secrets.token_hex(4)
    tmp = tempfile.mkdtemp(prefix="berth-bench-")
    os.chmod(tmp, 0o755)
    data = os.path.join(tmp, "jupyter")
    kernelspecs(data, lean_venv())
    kinds = [k for k in KINDS if k != "gateway" or gateway_dir()]
    if "gateway" in kinds:
        gateway_image(tmp, gateway_dir())
    workers = {k: worker(k, tmp, data, f"bench_run={run}") for k in kinds}
    times = {k: [] for k in kinds}
    loads = []
    try:
        for _ in range(args.n):
            for kind in kinds:
                w = workers[kind]
                w.stdin.write("go\n")
                w.stdin.flush()
                line = w.stdout.readline()
                if not line:
                    raise SystemExit(f"the {kind} worker ended (see its output above)")
                times[kind].append(float(line))
                time.sleep(1.0)  # what a user does between kernels; a warm pool refills meanwhile
            loads.append(os.getloadavg()[0])
    finally:
        for w in workers.values():
            w.stdin.close()
        for w in workers.values():
            try:
                w.wait(timeout=60)
            except subprocess.TimeoutExpired:
                w.kill()
        remove_labelled(run)
        with open("/proc/self/mountinfo") as f:  # the workers' services ended with their processes: their
            points = [line.split()[4] for line in f]  # mount hand-over roots are still mounted
        for point in reversed([p for p in points if p.startswith(tmp + "/")]):
            subprocess.run(["umount", "-l", point], capture_output=True)
        if "gateway" in kinds and not args.keep_image:
            subprocess.run(["docker", "rmi", GATEWAY_IMAGE], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "n": args.n,
        "median_s": med,
        "ratio": {k: med[k] / med["local"] for k in kinds},
        "all_s": times,
        "load_1min": {"min": min(loads), "max": max(loads)},
        "machine": f"{os.cpu_count()} cores, Linux {platform.release()}, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        "command": f"python benchmarks/kernel_start_sync.py --n {args.n}",
    }
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps({k: result[k] for k in ("median_s", "ratio", "load_1min")}, indent=1))
    if not args.no_doc:
        replace_section(DOC, BEGIN, END, render(result))


def render(r: dict) -> str:
    rows = []
    for k in r["median_s"]:
        t = TARGETS.get(k)
        verdict = "baseline" if t is None else f"≤ {t}× {'✔' if r['ratio'][k] <= t else '✘ missed'}"
        ms = sorted(r["all_s"][k])
        rows.append(
            f"| {k} | {1000 * r['median_s'][k]:.0f} ms | {1000 * ms[0]:.0f} ms | {1000 * ms[-1]:.0f} ms "
            f"| {r['ratio'][k]:.2f}× | {verdict} |"
        )
    return "\n".join(
        [
            BEGIN,
            "## Kernel start as a user meets it: the synchronous KernelManager by kernelspec name",
            "",
            "Start → first `kernel_info_reply` with `jupyter_client.KernelManager(kernel_name=...)`, each kind in "
            "its own long-lived worker process, interleaved round by round, one second between starts: **local** is "
            "ipykernel from a lean virtualenv (only ipykernel), **berth** Berth's default kernelspec with default "
            "settings (the warm pool on; each worker's first start also starts the embedded service), **cold** the "
            "same with `c.BerthService.pool_size = 0`, **gateway** gateway_provisioners' DockerProvisioner with an "
            "image built from the same `berth/python:3.11` plus its launchers (no limits). Berth kernels get the "
            "policy's default request.",
            "",
            f"Measured {r['date']} on {r['machine']} with `{r['command']}`; 1-minute load average "
            f"{r['load_1min']['min']:.2f}–{r['load_1min']['max']:.2f} during the run (a shared machine).",
            "",
            "| kind | median | min | max | median / local | target |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
            "Raw figures: `benchmarks/results/kernel_start_sync.json`.",
            END,
        ]
    )


if __name__ == "__main__":
    main()
