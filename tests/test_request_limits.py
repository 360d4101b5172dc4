"""The one request-body parser (server_ext/json_io.py): size, nesting and parse work bounded,
over a limit a 413/400 that names it, never a 500 (issue 20, item 5).

The routes of both front ends use it: tests/test_server_api.py (the server extension) and
tests/test_hub_service.py (the hub's service) send the issue's bodies to real servers.
"""

from __future__ import annotations

import json

import pytest

from jupyter_berth.errors import RequestError
from jupyter_berth.server.json_io import MAX_BODY_BYTES, MAX_DEPTH, parse_json

DEEP_ARRAYS = "[" * 100_000 + "]" * 100_000
DEEP_OBJECTS = '{"a":' * 50_000 + "1" + "}" * 50_000


@pytest.mark.parametrize("body", [DEEP_ARRAYS, DEEP_OBJECTS, "[" * 2000 + "]" * 2000])
def test_deep_bodies_are_a_400_naming_the_depth_limit(body):
    with pytest.raises(RequestError) as e:
        parse_json(body.encode())
    assert e.value.status == 400 and e.value.field == "body"
    assert f"limit of {MAX_DEPTH} levels" in e.value.message


def test_nesting_just_past_the_limit_is_refused_and_at_the_limit_accepted():
    at = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert parse_json(at.encode()) is not None
    with pytest.raises(RequestError, match="levels"):
        parse_json(("[" + at + "]").encode())
    wide = json.dumps({"items": [[i] for i in range(5000)]})  # many brackets, shallow: fine
    assert len(parse_json(wide)["items"]) == 5000


def test_a_body_over_the_size_limit_is_a_413_before_it_is_parsed():
    body = b" " * (MAX_BODY_BYTES + 1)  # would parse as invalid JSON: the size is refused first
    with pytest.raises(RequestError) as e:
        parse_json(body)
    assert e.value.status == 413 and f"limit of {MAX_BODY_BYTES} bytes" in e.value.message


def test_ordinary_bodies_and_bad_json():
    assert parse_json(b"") is None
    assert parse_json(b'{"kernel_id": "k", "request": {"cpu": 1}}') == {"kernel_id": "k", "request": {"cpu": 1}}
    with pytest.raises(RequestError, match="not valid JSON") as e:
        parse_json(b"{not json")
    assert e.value.status == 400
