"""Where found environments are kept: one JSON file per image content id, under the service's data dir.

What an image offers is a function of its content (the image id), so a record never goes stale:
a rebuilt tag has another id and is inspected again when offered. Files are written atomically;
a missing or unreadable one just means "not inspected yet".
"""

from __future__ import annotations

import json
import os
import re

from .model import ImageEnvironment

_ID_RE = re.compile(r"^sha256:([0-9a-f]{64})$")


class EnvironmentStore:
    """``ImageEnvironment`` records by image id, in ``directory`` (created when first written)."""

    def __init__(self, directory: str):
        self.directory = directory
        self._cache: dict[str, ImageEnvironment | None] = {}

    def _path(self, image_id: str) -> str | None:
        m = _ID_RE.match(image_id or "")
        return os.path.join(self.directory, m.group(1) + ".json") if m else None

    def get(self, image_id: str) -> ImageEnvironment | None:
        if image_id in self._cache:
            return self._cache[image_id]
        path = self._path(image_id)
        found = None
        if path is not None:
            try:
                with open(path) as f:
                    found = ImageEnvironment.from_json(json.load(f))
            except (OSError, ValueError, KeyError, TypeError):
                found = None
        if found is not None:
            self._cache[image_id] = found
        return found

    def put(self, env: ImageEnvironment) -> None:
        path = self._path(env.image_id)
        if path is None:
            return
        os.makedirs(self.directory, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(env.to_json(), f, indent=1, sort_keys=True)
        os.replace(tmp, path)
        self._cache[env.image_id] = env
