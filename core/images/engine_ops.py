"""Image operations on the Docker engine: pull and push with progress, tag, untag, who uses an image.

Each function takes docker-py's low-level ``APIClient`` as its first argument,
so that the service runs it through the runtime's one executor wrapper
(``await runtime.docker(fn, ...)``). They block; never call them on the event
loop. Docker's refusals become :mod:`jupyter_berth.errors` types that say what
was asked and what to do. ``progress`` callbacks are called from the worker
thread with one line of text each.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import docker.errors

from ..errors import ConflictError, EngineError, NotFoundError
from .catalog import Ref, parse_ref

Progress = Callable[[str], None]
#: Seconds between two byte-count lines of the same pull or push.
PROGRESS_EVERY = 2.0
_NOISY = ("Downloading", "Extracting", "Pushing", "Waiting", "Verifying Checksum")


def _quiet(_line: str) -> None:
    pass


class _Throttle:
    """Passes status changes on at once, byte counts at most every ``PROGRESS_EVERY`` seconds."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.last = 0.0

    def __call__(self, event: dict) -> None:
        status = event.get("status")
        if not status:
            return
        layer = f"{event['id']}: " if event.get("id") else ""
        if status.startswith(_NOISY):
            now = time.monotonic()
            if now - self.last < PROGRESS_EVERY:
                return
            self.last = now
            status = f"{status} {event.get('progress', '')}".rstrip()
        self.progress(f"  {layer}{status}")


def inspect(api, ref: str) -> dict | None:
    """``docker image inspect`` attributes, or ``None`` when the engine has no such image."""
    try:
        return api.inspect_image(ref)
    except docker.errors.NotFound:
        return None


def pull(api, source: Ref, progress: Progress = _quiet) -> dict:
    """Pull ``source`` (``registry/name:tag`` or ``…@sha256:…``) and return the image's attributes."""
    repository = source.repository
    tag = source.digest or source.tag or "latest"
    shown = str(source)
    progress(f"pulling {shown}")
    throttle = _Throttle(progress)
    try:
        for event in api.pull(repository, tag=tag, stream=True, decode=True):
            if "error" in event:
                raise _pull_error(shown, event["error"])
            throttle(event)
    except docker.errors.NotFound as e:
        raise NotFoundError(
            f"{shown} is not in the registry ({e.explanation or e}); check the name and tag, "
            f"or list the registry's tags",
            log_message=str(e),
        ) from e
    except docker.errors.APIError as e:
        raise _pull_error(shown, str(e.explanation or e)) from e
    attrs = inspect(api, f"{repository}@{source.digest}" if source.digest else f"{repository}:{tag}")
    if attrs is None:
        raise EngineError(f"the engine reported {shown} pulled but does not know it; try again")
    progress(f"pulled {shown} ({attrs['Id'][:19]}, {attrs.get('Size', 0) / 2**20:.0f} MiB)")
    return attrs


def _pull_error(shown: str, text: str) -> Exception:
    lowered = text.lower()
    if "manifest unknown" in lowered or "not found" in lowered or "does not exist" in lowered:
        return NotFoundError(f"{shown} is not in the registry ({text.strip()}); check the name and tag")
    if "connection refused" in lowered or "no such host" in lowered or "timeout" in lowered or "dial tcp" in lowered:
        return EngineError(
            f"the registry of {shown} does not answer ({text.strip()}); is it running "
            "(a local one: `bash scripts/registry-up.sh`)?"
        )
    return EngineError(f"pulling {shown} failed: {text.strip()}")


def push(api, ref: str, progress: Progress = _quiet) -> str | None:
    """Push ``registry/name:tag`` (already tagged locally); returns the registry digest (``sha256:…``)."""
    parsed = parse_ref(ref)
    if parsed.domain is None:
        raise EngineError(f"{ref} names no registry; tag it as REGISTRY/{ref} (e.g. 127.0.0.1:5000/{ref}) to push it")
    progress(f"pushing {ref}")
    digest = None
    throttle = _Throttle(progress)
    try:
        for event in api.push(parsed.repository, tag=parsed.tag or "latest", stream=True, decode=True):
            if "error" in event:
                raise EngineError(f"pushing {ref} failed: {event['error'].strip()}")
            digest = (event.get("aux") or {}).get("Digest") or digest
            throttle(event)
    except docker.errors.APIError as e:
        raise EngineError(f"pushing {ref} failed: {e.explanation or e}", log_message=str(e)) from e
    progress(f"pushed {ref} ({digest})")
    return digest


def tag(api, image: str, ref: str) -> None:
    """Give ``image`` (id or reference) the reference ``ref``, moving it from another image if needed."""
    parsed = parse_ref(ref)
    try:
        api.tag(image, parsed.repository, parsed.tag or "latest", force=True)
    except docker.errors.NotFound as e:
        raise NotFoundError(f"the image {image} is not on this host", log_message=str(e)) from e


def remove(api, ref: str) -> list[dict]:
    """Remove the reference ``ref`` (the image itself once no tag and no container is left).

    Never forced: an image a container uses (even a stopped one) is refused with
    :class:`ConflictError`. Returns Docker's answer (``[{"Untagged": …}, {"Deleted": …}]``).
    """
    try:
        return api.remove_image(ref, force=False, noprune=False) or []
    except docker.errors.NotFound:
        return []
    except docker.errors.APIError as e:
        if e.status_code == 409:
            raise ConflictError(f"{ref} is still used: {e.explanation or e}", log_message=str(e)) from e
        raise EngineError(f"removing {ref} failed: {e.explanation or e}", log_message=str(e)) from e


def containers_by_image(api) -> dict[str, list[str]]:
    """Every container on the engine (running or not), by the image id it was created from."""
    out: dict[str, list[str]] = {}
    for c in api.containers(all=True):
        out.setdefault(c.get("ImageID") or "", []).append((c.get("Names") or [c.get("Id", "")[:12]])[0].lstrip("/"))
    return out
