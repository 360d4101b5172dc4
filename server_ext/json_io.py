"""JSON in and out for tornado handlers: shared by the server extension and the hub's Berth service."""

from __future__ import annotations

import json
from typing import Any

from jupyter_berth.errors import RequestError


class JSONIOMixin:
    """Bodies parsed with errors that name the body; responses written as JSON."""

    def json_body(self) -> Any:
        if not self.request.body:
            return None
        try:
            return json.loads(self.request.body)
        except ValueError as e:
            raise RequestError("body", f"not valid JSON ({e})") from None

    def json_object(self) -> dict:
        body = self.json_body()
        if body is None:
            return {}
        if not isinstance(body, dict):
            raise RequestError("body", "expected a JSON object")
        return body

    def write_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data, default=str))
