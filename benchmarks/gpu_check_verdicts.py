"""Verdicts and the admin checklist of ``gpu_enforcement_check.py`` (pure functions, no GPU needed).

A probe passes only when the limit holds *both ways*: the kernel cannot pass its budget, and it
can reach at least :data:`REACH` of it. The second half catches a cap applied twice (a framework
fraction of a total that an interception library already shrank to the budget: 0.25 × 0.25) or a
limit written in the wrong unit.

The subprocess probe shows what "per process" means: one container (the kernel's place) starts
two child processes (what ``!python train.py`` does) that each allocate towards the budget at
once. Under MPS the limits are per client *process* (NVIDIA's MPS documentation, appendix
"Environment Variables"), so together they may hold up to twice the budget; HAMi-core accounts the
processes of one container together (a shared region, ``CUDA_DEVICE_MEMORY_SHARED_CACHE`` in
src/multiprocess/multiprocess_memory_limit.h), so together they stay within it.
"""

from __future__ import annotations

#: The share of its budget a kernel must be able to allocate.
REACH = 0.9
MiB = 1024**2


def mib(n: int) -> str:
    return f"{n // MiB} MiB"


def chunk_for(cap: int) -> int:
    """Allocation step: 64 MiB, smaller for small budgets so that REACH is measurable (whole MiB)."""
    return max(MiB, min(64 * MiB, (cap // 64) // MiB * MiB))


def judge(
    report: dict, cap: int, mechanism: str, probe: str, devices: int, exit_code, target: int | None = None
) -> dict:
    """Verdict for one cuda/torch probe: PASS, WARN (not enforced, as expected) or FAIL.

    ``target`` is how far the probe tried to go (``None``: past the cap); the reach is measured
    against the smaller of the two, so a probe kept short of the whole device is not failed for it.
    """
    if "error" in report or exit_code not in (0, None):
        return {"verdict": "FAIL", "detail": f"probe failed (exit {exit_code}): {report.get('error', report)}"}
    if report.get("visible_devices") != devices:
        return {
            "verdict": "FAIL",
            "detail": f"the container sees {report.get('visible_devices')} devices, expected {devices}",
        }
    allocated = int(report.get("allocated", 0))
    goal = min(cap, target) if target else cap
    reached = allocated / goal if goal else 0.0
    if allocated > cap:
        if probe == "cuda" and mechanism == "none":
            return {
                "verdict": "WARN",
                "detail": f"raw CUDA allocated {mib(allocated)} past the cap {mib(cap)}: not enforced "
                "(expected with mechanism none: framework caps are cooperative)",
            }
        return {"verdict": "FAIL", "detail": f"allocated {mib(allocated)}, past the cap {mib(cap)} ({mechanism})"}
    if reached < REACH:
        return {
            "verdict": "FAIL",
            "detail": f"could reach only {mib(allocated)} = {reached:.0%} of {mib(goal)} (budget {mib(cap)}; needs "
            f"{REACH:.0%}; {mechanism}): a cap applied twice, or a limit in the wrong unit",
        }
    return {
        "verdict": "PASS",
        "detail": f"reached {mib(allocated)} = {reached:.0%} of its {mib(cap)} budget and no further ({mechanism})",
    }


def judge_processes(report: dict, cap: int, mechanism: str, exit_code, target: int | None = None) -> dict:
    """Verdict for the subprocess probe: does the limit bind per process or per container, as documented?"""
    if "error" in report or exit_code not in (0, None):
        return {"verdict": "FAIL", "detail": f"probe failed (exit {exit_code}): {report.get('error', report)}"}
    children = report.get("children") or []
    broken = [c for c in children if "error" in c]
    if len(children) < 2 or broken:
        return {"verdict": "FAIL", "detail": f"the child processes did not report: {broken or children}"}
    each = [int(c.get("allocated", 0)) for c in children]
    total = sum(each)
    held = f"{len(each)} processes held {' + '.join(mib(n) for n in each)} = {mib(total)} (budget {mib(cap)})"
    if mechanism == "mps":
        goal = min(cap, target) if target else cap
        if all(n <= cap for n in each) and all(n >= REACH * goal for n in each):
            return {"verdict": "PASS", "detail": f"{held}: per process, as NVIDIA documents MPS client limits"}
        return {"verdict": "FAIL", "detail": f"{held}: not the documented per-process MPS limit; report this"}
    if mechanism == "interception":
        if total <= cap:
            return {"verdict": "PASS", "detail": f"{held}: per container, as HAMi-core's shared accounting says"}
        return {"verdict": "FAIL", "detail": f"{held}: more than the budget together; the library limits per process"}
    return {"verdict": "WARN", "detail": f"{held}: nothing binds them (expected with mechanism none)"}


def admin_checklist(mechanism: str, pipe_directory: str, image: str | None) -> list[str]:
    """What an admin runs on a GPU host, in minutes, before trusting a mechanism (see docs/admin-gpus.md)."""
    image = image or "<kernel image>"
    steps = [
        "nvidia-smi -L  # the UUIDs Berth's inventory lists (GET berth/api/gpus); MIG parents show MIG devices",
        f"docker run --rm --gpus device=<one UUID> {image} nvidia-smi -L  # exactly that one GPU",
        "grep -E 'accept-nvidia-visible-devices-envvar-when-unprivileged' /etc/nvidia-container-runtime/config.toml"
        "  # false: only the device-request path exposes GPUs (c.BerthSpawner.gpu_exposure='device-request';"
        " the Swarm runtime cannot use such hosts)",
        f"docker run --rm -e NVIDIA_VISIBLE_DEVICES=<one UUID> {image} nvidia-smi -L"
        "  # with the nvidia default runtime: the environment path works only if this lists the GPU",
    ]
    if mechanism == "mps":
        steps += [
            f"sudo CUDA_MPS_PIPE_DIRECTORY={pipe_directory} CUDA_DEVICE_ORDER=PCI_BUS_ID nvidia-cuda-mps-control -d"
            "  # PCI_BUS_ID: the daemon's device numbers then match nvidia-smi's (CUDA's default is FASTEST_FIRST)",
            "ls -d /tmp/nvidia-mps 2>/dev/null && echo 'NVIDIA default pipe dir exists: the runtime mounts it into"
            " every GPU container'",
            f"echo 'set_default_device_pinned_mem_limit <ordinal> <largest budget>M' | sudo CUDA_MPS_PIPE_DIRECTORY="
            f"{pipe_directory} nvidia-cuda-mps-control  # by ordinal, not UUID; only servers started afterwards",
            f"echo 'set_default_active_thread_percentage <largest share %>' | sudo CUDA_MPS_PIPE_DIRECTORY="
            f"{pipe_directory} nvidia-cuda-mps-control",
            f"echo get_server_list | sudo CUDA_MPS_PIPE_DIRECTORY={pipe_directory} nvidia-cuda-mps-control"
            "  # must be empty when the defaults are set; otherwise quit and restart the daemon",
            f"docker image inspect -f '{{{{.Config.User}}}}' {image}  # the UID every MPS kernel runs as: one MPS"
            " server per UID",
        ]
    elif mechanism == "interception":
        steps += [
            "ls -ld /tmp/vgpulock  # HAMi-core's lock directory, shared via c.GpuManager.gpu_interception_mounts",
        ]
    steps += [
        f"python benchmarks/gpu_enforcement_check.py --image {image} --mechanism {mechanism} --share 0.25"
        " [--torch]  # exit 0: reach and ceiling hold, and the subprocess probe matches the documented scope",
        "while a 0.25 kernel runs: GET berth/api/kernels shows its usage.gpu_mem_bytes (per-kernel metrics)",
    ]
    return [f"{n}. {step}" for n, step in enumerate(steps, 1)]
