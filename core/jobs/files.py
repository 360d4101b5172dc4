"""Where a job's files live and how they are read (blocking; the manager runs these off the loop).

A job directory holds ``input.ipynb`` (parameters injected), then what the runner writes:
``output.ipynb`` (after every cell), ``job.log``, ``result.json`` and the notebook's side files. A job
submitted from a path gets its directory next to the notebook (or the ``output_dir`` it names); a job
sent with its notebook's content (the REST API, hub mode) gets one under the service's own folder,
per user, and its owner reads it through the API.
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone

from ..errors import RequestError

#: The uid:gid job containers run as (``ContainerSpec.user``); a service running as root hands them the job directory.
CONTAINER_UID, CONTAINER_GID = 1000, 1000


def _stem_stamp(notebook: str, job_id: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]", "-", os.path.splitext(os.path.basename(notebook))[0])[:60]
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{stem}-{stamp}-{job_id[:8]}"


def beside_notebook(notebook: str, output_dir: str | None, job_id: str, jobs_dir: str) -> str:
    """``output_dir``, or ``<notebook's folder>/<jobs_dir>/<notebook>-<time>-<id>``."""
    if output_dir:
        return os.path.abspath(os.path.expanduser(output_dir))
    return os.path.join(os.path.dirname(notebook), jobs_dir, _stem_stamp(notebook, job_id))


def service_owned(base: str, user: str, notebook: str, job_id: str) -> str:
    """``<base>/<user>/<notebook>-<time>-<id>``: a job sent with its notebook's content."""
    owner = re.sub(r"[^A-Za-z0-9_.@-]", "-", user)[:100] or "-"
    return os.path.join(os.path.abspath(base), owner, _stem_stamp(notebook, job_id))


def check_empty(job_dir: str) -> None:
    if os.path.isdir(job_dir) and os.listdir(job_dir):
        raise RequestError("output_dir", f"{job_dir} is not empty; name a new or empty directory for the job's files")


def prepare(job_dir: str, nb: dict) -> bool:
    """Create the job directory with its input notebook; ``True`` when the directory is new."""
    check_empty(job_dir)
    made = not os.path.isdir(job_dir)
    os.makedirs(job_dir, exist_ok=True)
    with open(os.path.join(job_dir, "input.ipynb"), "w", encoding="utf-8") as f:
        json.dump(nb, f, indent=1)
    if os.geteuid() == 0:
        for path in (job_dir, os.path.join(job_dir, "input.ipynb")):
            os.chown(path, CONTAINER_UID, CONTAINER_GID)
    elif os.getuid() != CONTAINER_UID:
        os.chmod(job_dir, 0o777)  # the container's user must write its output here
    return made


def read_json(job_dir: str, name: str) -> dict | None:
    """``result.json`` or ``output.ipynb`` of a job; None when missing or not (yet) whole."""
    try:
        with open(os.path.join(job_dir, name), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_log(job_dir: str, offset: int) -> tuple[str, int]:
    """``job.log`` from byte ``offset`` (at most 1 MiB): ``(text, next offset)``."""
    try:
        with open(os.path.join(job_dir, "job.log"), "rb") as f:
            f.seek(max(0, int(offset)))
            data = f.read(1 << 20)
    except FileNotFoundError:
        return "", offset
    return data.decode("utf-8", errors="replace"), offset + len(data)
