"""JSON in and out for tornado handlers: shared by the server extension and the hub's Berth service.

Every request body a Berth endpoint receives goes through :func:`parse_json`, the one parser,
with three bounds (issue 20, item 5), so that no body can cost the server more than a small,
known amount of work and none is answered with a 500:

* **size**: at most :data:`MAX_BODY_BYTES`; a larger body is refused with 413 before it is
  parsed, on every Berth route (also those that read no body), in ``prepare()``;
* **nesting**: at most :data:`MAX_DEPTH` levels of arrays and objects (Python's own parser
  fails with a RecursionError near 1,000, which used to surface as a 500); 400 beyond;
* **parse time**: bounded by the size. The worst body under the size limit parses in a few
  milliseconds (benchmarks/request_limits.py measures it; docs/benchmarks.md has the figure).
"""

from __future__ import annotations

import json
import re
from typing import Any

from jupyter_berth.errors import RequestError

#: Largest request body a Berth endpoint reads (bytes). Bodies are small JSON documents.
MAX_BODY_BYTES = 1024 * 1024
#: Deepest nesting of arrays and objects accepted in a body.
MAX_DEPTH = 32


def _too_large(size: int) -> RequestError:
    return RequestError(
        "body",
        f"{size} bytes is over the request size limit of {MAX_BODY_BYTES} bytes; "
        "Berth requests are small JSON documents: send only the fields the route takes",
        status=413,
    )


def _too_deep() -> RequestError:
    return RequestError(
        "body",
        f"nested deeper than the limit of {MAX_DEPTH} levels of arrays and objects; "
        "Berth requests are flat JSON documents",
    )


_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
#: Keeps only brackets, and makes every one square (the nesting is what counts).
_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")


def _deeper_than(raw: bytes, limit: int) -> bool:
    """True when ``raw`` nests arrays/objects deeper than ``limit``, found before parsing at C speed:
    strings dropped, then only brackets kept, then each pass removes the innermost ``[]`` pairs (one
    level: ``bytes.replace`` does not rescan what a removal joins)."""
    brackets = _STRING.sub(b"", raw).translate(_BRACKETS, _NOT_BRACKET)
    for _ in range(limit):
        if not brackets:
            return False
        fewer = brackets.replace(b"[]", b"")
        if len(fewer) == len(brackets):
            return False  # unbalanced: not JSON, which the parser says
        brackets = fewer
    return b"[]" in brackets


def check_size(size: int) -> None:
    """Refuse (413) a body over :data:`MAX_BODY_BYTES`."""
    if size > MAX_BODY_BYTES:
        raise _too_large(size)


def parse_json(body: bytes | str | None) -> Any:
    """The one parser of request bodies: ``None`` for an empty body; 413/400 ``RequestError`` for a body
    over the size or nesting limit or that is not JSON."""
    if not body:
        return None
    check_size(len(body))
    raw = body.encode() if isinstance(body, str) else body
    # Fewer brackets than the limit cannot nest deeper than it: most bodies skip the scan.
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and _deeper_than(raw, MAX_DEPTH):
        raise _too_deep()
    try:
        return json.loads(raw)
    except RecursionError:  # cannot happen under MAX_DEPTH; kept so that nothing deep is ever a 500
        raise _too_deep() from None
    except ValueError as e:
        raise RequestError("body", f"not valid JSON ({e})") from None


class JSONIOMixin:
    """Bodies parsed with errors that name the body and the limits; responses written as JSON."""

    def prepare(self, *args, **kwargs):
        check_size(len(self.request.body or b""))  # every route, before authentication and any work
        return super().prepare(*args, **kwargs)

    def json_body(self) -> Any:
        return parse_json(self.request.body)

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
