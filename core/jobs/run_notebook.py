"""Runs one notebook inside a job's container (Berth mounts this file read-only; it imports no Berth code).

Usage: ``python3 run_notebook.py JOB_DIR``. ``JOB_DIR`` holds ``input.ipynb`` (parameters already
injected by the service). The script starts the image's own kernel with ``jupyter_client`` (every
image with ipykernel has it), executes the code cells in order with the job directory as working
directory, and after every cell rewrites ``output.ipynb`` (atomically), so a job that fails, is
stopped or runs out of memory keeps the output of the cells it finished. Progress and the cells'
streams go to ``job.log`` and to stdout (the container's log). At the end ``result.json`` says how it
went: ``{"status": "completed"}`` or ``{"status": "failed", "reason": ..., "message": ..., "cell": n}``.

Exit codes: 0 completed, 1 a cell raised, 2 the kernel died (out of memory, usually: the service
reads the engine's OOM flag), 3 the notebook could not be read or the kernel not started.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import time


def log(job_dir: str, text: str) -> None:
    line = text if text.endswith("\n") else text + "\n"
    sys.stdout.write(line)
    sys.stdout.flush()
    with open(os.path.join(job_dir, "job.log"), "a", encoding="utf-8") as f:
        f.write(line)


def write_json(path: str, data: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def output_of(msg: dict) -> dict | None:
    """An iopub message as an nbformat v4 output (None for messages that are not outputs)."""
    kind, content = msg["header"]["msg_type"], msg["content"]
    if kind == "stream":
        return {"output_type": "stream", "name": content["name"], "text": content["text"]}
    if kind in ("display_data", "execute_result"):
        out = {"output_type": kind, "data": content.get("data", {}), "metadata": content.get("metadata", {})}
        if kind == "execute_result":
            out["execution_count"] = content.get("execution_count")
        return out
    if kind == "error":
        return {
            "output_type": "error",
            "ename": content["ename"],
            "evalue": content["evalue"],
            "traceback": content["traceback"],
        }
    return None


def kernel_name(nb: dict) -> str:
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().find_kernel_specs()
    wanted = (nb.get("metadata", {}).get("kernelspec") or {}).get("name")
    if wanted in specs:
        return wanted
    lang = (nb.get("metadata", {}).get("language_info") or {}).get("name", "python")
    for name in sorted(specs):
        if name.startswith(lang) or (lang == "python" and name.startswith("python")):
            return name
    return sorted(specs)[0] if specs else "python3"


def run_cell(km, client, cell: dict) -> tuple[str, dict | None]:
    """Execute one code cell; fill its outputs. Returns (status, error content or None)."""
    msg_id = client.execute("".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"])
    cell["outputs"] = []
    error = None
    while True:
        try:
            msg = client.get_iopub_msg(timeout=1.0)
        except queue.Empty:
            if not km.is_alive():
                return "dead", None
            continue
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind = msg["header"]["msg_type"]
        if kind == "status" and msg["content"]["execution_state"] == "idle":
            break
        if kind == "execute_input":
            cell["execution_count"] = msg["content"].get("execution_count")
        elif kind == "clear_output":
            cell["outputs"] = []
        out = output_of(msg)
        if out is not None:
            cell["outputs"].append(out)
            if kind == "error":
                error = msg["content"]
    return ("error" if error else "ok"), error


def main(job_dir: str) -> int:
    from jupyter_client.manager import KernelManager

    in_path, out_path = os.path.join(job_dir, "input.ipynb"), os.path.join(job_dir, "output.ipynb")
    result_path = os.path.join(job_dir, "result.json")
    try:
        with open(in_path, encoding="utf-8") as f:
            nb = json.load(f)
        name = kernel_name(nb)
        km = KernelManager(kernel_name=name)
        km.start_kernel(cwd=job_dir)
    except Exception as e:  # noqa: BLE001 - whatever broke, the job's record must say it
        write_json(result_path, {"status": "failed", "reason": "start", "message": f"could not start: {e}"})
        log(job_dir, f"[berth] could not start the notebook's kernel: {e}")
        return 3
    client = km.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=120)
        code_cells = [c for c in nb["cells"] if c.get("cell_type") == "code"]
        log(job_dir, f"[berth] kernel {name} ready; {len(code_cells)} code cells to run")
        for number, cell in enumerate(code_cells, 1):
            started = time.monotonic()
            log(job_dir, f"[berth] cell {number}/{len(code_cells)}")
            status, error = run_cell(km, client, cell)
            for out in cell.get("outputs", []):
                if out["output_type"] == "stream":
                    log(job_dir, out["text"])
            write_json(out_path, nb)
            if status == "dead":
                message = f"the kernel died while running cell {number}"
                write_json(
                    result_path, {"status": "failed", "reason": "kernel died", "message": message, "cell": number}
                )
                log(job_dir, f"[berth] {message}")
                return 2
            if status == "error":
                message = f"cell {number} raised {error['ename']}: {error['evalue']}"
                write_json(result_path, {"status": "failed", "reason": "error", "message": message, "cell": number})
                log(job_dir, f"[berth] {message}")
                return 1
            log(job_dir, f"[berth] cell {number} done in {time.monotonic() - started:.1f} s")
        write_json(out_path, nb)
        write_json(result_path, {"status": "completed", "message": f"all {len(code_cells)} code cells ran"})
        log(job_dir, "[berth] completed")
        return 0
    finally:
        client.stop_channels()
        km.shutdown_kernel(now=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
