#!/usr/bin/env python3
"""Check on a host with NVIDIA GPUs that a fractional GPU grant is really enforced.

Kept ready for a machine with a GPU: this project's own machines have none, and
there the script stops at once with "no NVIDIA GPU on this host (…)" and exit
status 77 (skipped).

What it does, with real devices from NVML:

1. grants ``--containers`` kernels ``--share`` of a GPU each through the
   allocator (``pack``: they land on the same device when they fit);
2. starts one container per grant with the enforcement plan
   (``--mechanism mps|interception|none``): device request, environment, mounts;
3. inside each container a probe (plain Python + ctypes on ``libcuda.so.1``,
   which the NVIDIA runtime injects; no framework needed) counts the visible
   devices, then allocates device memory in steps up to twice the cap, holds it
   a few seconds so the containers overlap, and reports;
4. passes when each container sees exactly its device(s), its allocations
   stopped at the cap **and reached at least 90 % of it** (a cap applied twice,
   or a limit in the wrong unit, fails here). With ``none`` only framework caps
   apply, which a raw CUDA allocation ignores: the memory check is then
   reported as "not enforced (expected)". ``--torch`` adds a PyTorch probe that
   runs the IPython startup file first (needs an image with torch);
5. the subprocess probe: one more container whose main process (the kernel's
   place) starts two child processes, as ``!python train.py`` would, that
   allocate towards the budget at once. It shows whether the limit binds each
   process (MPS, as NVIDIA documents) or the container (HAMi-core).

``--checklist`` prints the steps an admin runs on a GPU host (minutes) and exits;
the checklist is also printed after every run. Verdicts and the checklist live in
``gpu_check_verdicts.py`` next to this script.

Example::

    sudo CUDA_MPS_PIPE_DIRECTORY=/run/nvidia-mps nvidia-cuda-mps-control -d    # for --mechanism mps
    python benchmarks/gpu_enforcement_check.py --image berth/kernel:latest --mechanism mps --share 0.25

Exit status: 0 all checks passed, 1 a check failed, 2 usage or set-up error,
77 skipped (no NVIDIA GPU on this host).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gpu_check_verdicts import admin_checklist, chunk_for, judge, judge_processes  # noqa: E402

from jupyter_berth.gpu.enforcement import DEFAULT_MPS_PIPE_DIRECTORY  # noqa: E402

EXIT_PASS, EXIT_FAIL, EXIT_SETUP, EXIT_SKIPPED = 0, 1, 2, 77

# Runs inside the container: only python3 and the driver's libcuda.so.1 needed.
RAW_CUDA_PROBE = r"""
import ctypes, json, os, sys, time
limit, hold = int(sys.argv[1]), float(sys.argv[2])
out = {"probe": "cuda"}
try:
    cuda = ctypes.CDLL("libcuda.so.1")
except OSError as e:
    print(json.dumps({"probe": "cuda", "error": f"libcuda.so.1 not found in the container: {e}"})); sys.exit(0)
def check(result, what):
    if result != 0:
        raise RuntimeError(f"{what} returned CUDA error {result}")
check(cuda.cuInit(0), "cuInit")
count = ctypes.c_int()
check(cuda.cuDeviceGetCount(ctypes.byref(count)), "cuDeviceGetCount")
out["visible_devices"] = count.value
device, context = ctypes.c_int(), ctypes.c_void_p()
check(cuda.cuDeviceGet(ctypes.byref(device), 0), "cuDeviceGet")
check(cuda.cuCtxCreate_v2(ctypes.byref(context), 0, device), "cuCtxCreate")
free, total = ctypes.c_size_t(), ctypes.c_size_t()
if cuda.cuMemGetInfo_v2(ctypes.byref(free), ctypes.byref(total)) == 0:
    out["reported_total"], out["reported_free"] = total.value, free.value
allocated, error, chunk = 0, 0, int(sys.argv[3])
pointers = []
while allocated + chunk <= limit:
    pointer = ctypes.c_uint64()
    error = cuda.cuMemAlloc_v2(ctypes.byref(pointer), ctypes.c_size_t(chunk))
    if error != 0:
        break
    pointers.append(pointer)
    allocated += chunk
out["allocated"], out["last_error"] = allocated, error
time.sleep(hold)
print(json.dumps(out))
"""

# The kernel's main process starts two children (as `!python ...` does) that allocate at once.
PROCESSES_PROBE = r"""
import json, subprocess, sys
child_source, limit, hold, chunk = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
children = [
    subprocess.Popen([sys.executable, "-c", child_source, limit, hold, chunk], stdout=subprocess.PIPE, text=True)
    for _ in range(2)
]
reports = []
for child in children:
    out, _ = child.communicate(timeout=600)
    try:
        reports.append(json.loads(out.strip().splitlines()[-1]))
    except (IndexError, ValueError):
        reports.append({"error": f"child exited {child.returncode} without a report: {out[-500:]}"})
print(json.dumps({"probe": "processes", "children": reports}))
"""

TORCH_PROBE = r"""
import json, sys, time
exec(compile(open("/opt/berth/gpu/00-berth-gpu-caps.py").read(), "00-berth-gpu-caps.py", "exec"))
limit, hold, chunk = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
import torch
out = {"probe": "torch", "visible_devices": torch.cuda.device_count()}
blocks, allocated = [], 0
try:
    while allocated + chunk <= limit:
        blocks.append(torch.empty(chunk, dtype=torch.uint8, device="cuda"))
        allocated += chunk
    out["last_error"] = 0
except RuntimeError as e:  # torch.cuda.OutOfMemoryError is a RuntimeError
    out["last_error"] = type(e).__name__
out["allocated"] = allocated
time.sleep(hold)
print(json.dumps(out))
"""


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--image", help="a local image with python3 (e.g. the berth kernel image); never pulled")
    p.add_argument("--mechanism", choices=["none", "mps", "interception"], default="mps")
    p.add_argument("--share", type=float, default=0.25, help="GPU share per container (default 0.25)")
    p.add_argument("--containers", type=int, default=2, help="containers started at once (default 2)")
    p.add_argument("--quantum", type=float, default=0.05)
    p.add_argument(
        "--mps-pipe-directory",
        default=DEFAULT_MPS_PIPE_DIRECTORY,
        help=f"the MPS daemon's CUDA_MPS_PIPE_DIRECTORY (default {DEFAULT_MPS_PIPE_DIRECTORY})",
    )
    p.add_argument("--interception-library", help="host path of e.g. HAMi-core's libvgpu.so")
    p.add_argument("--interception-env", default="{}", help='JSON, e.g. {"CUDA_DEVICE_MEMORY_LIMIT": "{memory_mb}m"}')
    p.add_argument(
        "--interception-mount",
        action="append",
        default=[],
        help="extra host:container path (rw), e.g. /tmp/vgpulock:/tmp/vgpulock",
    )
    p.add_argument("--user", help="container user (MPS clients must match the MPS daemon's UID)")
    p.add_argument("--hold", type=float, default=3.0, help="seconds each probe holds its memory")
    p.add_argument("--torch", action="store_true", help="also run the PyTorch probe (the image needs torch)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--checklist", action="store_true", help="print the admin checklist for a GPU host and exit")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.checklist:
        print("\n".join(admin_checklist(args.mechanism, args.mps_pipe_directory, args.image)))
        return EXIT_PASS
    from jupyter_berth.gpu import discover

    inventory = discover()
    if not inventory.devices:
        print(f"{inventory.message}; nothing to check (exit {EXIT_SKIPPED}: skipped)")
        print("On a GPU host: --checklist prints what to check there, in minutes.")
        return EXIT_SKIPPED
    print(inventory.message)
    if not args.image:
        print("--image is required: a local image with python3 (the berth kernel image will do)", file=sys.stderr)
        return EXIT_SETUP
    return run_checks(args, inventory)


def run_checks(args, inventory) -> int:
    import docker

    from jupyter_berth.errors import BerthError
    from jupyter_berth.gpu import assign, docker_run_kwargs, plan, used_by_device, write_startup_file
    from jupyter_berth.gpu.enforcement import image_environment

    try:
        client = docker.from_env()
        image_env = image_environment(client.images.get(args.image).attrs.get("Config", {}).get("Env"))
    except docker.errors.DockerException as e:
        print(f"cannot use the container engine or the image {args.image!r}: {e}", file=sys.stderr)
        return EXIT_SETUP
    extra_mounts = []
    for spec in args.interception_mount:
        src, _, dst = spec.partition(":")
        extra_mounts.append((src, dst or src, False))
    grants = []
    try:
        for _ in range(args.containers):
            grants.append(assign(inventory.devices, used_by_device(grants), args.share, "pack", args.quantum))
        plans = [
            plan(
                g,
                inventory.devices,
                args.mechanism,
                args.interception_library,
                json.loads(args.interception_env),
                mps_pipe_directory=args.mps_pipe_directory,
                interception_mounts=extra_mounts,
                image_env=image_env,  # known here: the plan names JAX's fraction variable itself
            )
            for g in grants
        ]
    except (BerthError, json.JSONDecodeError) as e:
        print(f"cannot plan the grants: {getattr(e, 'message', e)}", file=sys.stderr)
        return EXIT_SETUP

    startup_dir = tempfile.mkdtemp(prefix="berth-gpu-check-")
    startup_file = write_startup_file(startup_dir)
    probes = [("cuda", RAW_CUDA_PROBE)] + ([("torch", TORCH_PROBE)] if args.torch else [])
    results, failed = [], False

    def start(gpu_plan, source, *arguments):
        kwargs = docker_run_kwargs(gpu_plan)
        kwargs["mounts"].append(
            docker.types.Mount("/opt/berth/gpu/00-berth-gpu-caps.py", str(startup_file), type="bind", read_only=True)
        )
        command = ["python3", "-c", source, *[str(a) for a in arguments]]
        return client.containers.run(
            args.image, command, detach=True, user=args.user, labels={"berth.check": "gpu-enforcement"}, **kwargs
        )

    def device_memory(gpu_plan) -> int:
        return sum(d.memory_bytes for d in inventory.devices if d.uuid in gpu_plan.device_ids)

    runs = [(name, source, grant, gpu_plan) for name, source in probes for grant, gpu_plan in zip(grants, plans)]
    runs.append(("processes", PROCESSES_PROBE, grants[0], plans[0]))
    for probe_name in dict.fromkeys(name for name, *_ in runs):
        containers = []
        try:
            for name, source, grant, gpu_plan in runs:
                if name != probe_name:
                    continue
                cap = gpu_plan.memory_bytes
                if name == "processes":  # two children: each past its budget, together short of the device
                    target = min(2 * cap, device_memory(gpu_plan) * 45 // 100)
                    container = start(gpu_plan, source, RAW_CUDA_PROBE, target, args.hold, chunk_for(cap))
                else:  # past the cap, short of the whole device
                    target = min(2 * cap, device_memory(gpu_plan) * 9 // 10)
                    container = start(gpu_plan, source, target, args.hold, chunk_for(cap))
                containers.append((grant, gpu_plan, container, target))
            for grant, gpu_plan, container, target in containers:
                report, exit_code = collect(container)
                report.setdefault("probe", probe_name)
                if probe_name == "processes":
                    report.update(judge_processes(report, gpu_plan.memory_bytes, args.mechanism, exit_code, target))
                else:
                    report.update(
                        judge(report, gpu_plan.memory_bytes, args.mechanism, probe_name, len(grant), exit_code, target)
                    )
                report["share"], report["device"] = grant[0].share, grant[0].uuid
                failed |= report["verdict"] == "FAIL"
                results.append(report)
        finally:
            for *_, container, _ in containers:
                try:
                    container.remove(force=True)
                except docker.errors.DockerException:
                    pass
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            print(f"[{r['verdict']}] {r['probe']} probe, {r['share']} of {r['device']}: {r['detail']}")
        print("\nBefore trusting this host, also check:")
        print("\n".join(admin_checklist(args.mechanism, args.mps_pipe_directory, args.image)))
    return EXIT_FAIL if failed else EXIT_PASS


def collect(container) -> tuple[dict, int | None]:
    """The probe's JSON report and exit code (an error report if it printed none)."""
    try:
        exit_code = container.wait(timeout=300).get("StatusCode")
        lines = container.logs(stdout=True, stderr=False).decode().strip().splitlines()
        return json.loads(lines[-1]), exit_code
    except Exception as e:  # a hung probe, a broken engine or no JSON: report it, keep checking the rest
        try:
            tail = container.logs().decode()[-2000:]
        except Exception:  # noqa: BLE001 - the engine may be gone; the first error says enough
            tail = ""
        return {"error": f"{type(e).__name__}: {e}; output: {tail}"}, None


if __name__ == "__main__":
    started = time.monotonic()
    code = main()
    print(f"({time.monotonic() - started:.1f} s)", file=sys.stderr)
    sys.exit(code)
