"""Parsing and validating resource requests and presets (pure, no engine)."""

import pytest

from jupyter_berth.errors import NotFoundError, RequestError
from jupyter_berth.resources import Preset, Resources, find_preset, format_bytes, parse_cpu, parse_gpu, parse_memory

GiB = 1024**3
MiB = 1024**2


@pytest.mark.parametrize(
    "text, expected",
    [
        ("512M", 512 * MiB),
        ("4G", 4 * GiB),
        ("4GiB", 4 * GiB),
        ("4gb", 4 * GiB),
        ("1.5G", int(1.5 * GiB)),
        ("1073741824", GiB),
        (1073741824, GiB),
        (" 2 Gi ", 2 * GiB),
        ("1T", 1024 * GiB),
    ],
)
def test_memory_forms(text, expected):
    assert parse_memory(text) == expected


@pytest.mark.parametrize("bad", ["", "G", "4X", "-1G", "0", "abc", None, True, [], "nan", "4 G B"])
def test_memory_malformed_names_field_and_form(bad):
    with pytest.raises(RequestError) as e:
        parse_memory(bad)
    assert e.value.field == "mem"
    assert "512M" in e.value.message  # the accepted form is shown
    assert e.value.status == 400


@pytest.mark.parametrize("text, expected", [("2", 2.0), ("0.5", 0.5), (4, 4.0), (" 1.25 ", 1.25)])
def test_cpu_forms(text, expected):
    assert parse_cpu(text) == expected


@pytest.mark.parametrize("bad", ["0", 0, -1, "-0.5", "two", "inf", "nan", True])
def test_cpu_must_be_positive_number(bad):
    with pytest.raises(RequestError) as e:
        parse_cpu(bad)
    assert e.value.field == "cpu"
    assert "cores" in e.value.message


@pytest.mark.parametrize("text, expected", [("0", 0.0), ("0.25", 0.25), (1, 1.0), ("2", 2.0), (0.05, 0.05)])
def test_gpu_fraction_or_whole(text, expected):
    assert parse_gpu(text) == expected


@pytest.mark.parametrize("bad, hint", [("1.5", "whole number"), (-0.25, "negative"), ("x", "not a number")])
def test_gpu_bad(bad, hint):
    with pytest.raises(RequestError) as e:
        parse_gpu(bad)
    assert e.value.field == "gpu"
    assert hint in e.value.message


def test_request_parse_fills_from_base_and_aliases():
    base = Resources(cpu=1, mem=2 * GiB)
    r = Resources.parse({"cpus": "2", "memory": "4G", "gpu": "0.25"}, base=base)
    assert (r.cpu, r.mem, r.gpu) == (2.0, 4 * GiB, 0.25)
    assert r.pids == base.pids
    assert r.gpu_is_fraction and r.gpu_devices == 0
    assert Resources.parse({"gpu": 2}).gpu_devices == 2
    assert r.describe() == "2 CPU · 4 GiB · 0.25 GPU"


def test_unknown_field_refused_not_ignored():
    with pytest.raises(RequestError) as e:
        Resources.parse({"cpuz": 2})
    assert e.value.field == "cpuz"
    assert "known resources" in e.value.message


def test_too_little_memory_and_shm_above_memory():
    with pytest.raises(RequestError, match="at least 32 MiB"):
        Resources.parse({"mem": "1M"})
    with pytest.raises(RequestError) as e:
        Resources.parse({"mem": "256M", "shm": "1G"})
    assert e.value.field == "shm"


def test_format_bytes():
    assert format_bytes(4 * GiB) == "4 GiB"
    assert format_bytes(512 * MiB) == "512 MiB"
    assert format_bytes(1.5 * GiB) == "1.5 GiB"
    assert format_bytes(100) == "100 B"


def test_presets():
    p = Preset.parse("gpu-small", {"cpu": 4, "mem": "16G", "gpu": 0.5, "image": "berth/python:3.11"})
    assert p.display_name == "4 CPU · 16 GiB · 0.5 GPU"
    assert p.resources.mem == 16 * GiB
    with pytest.raises(RequestError, match="valid preset name"):
        Preset.parse("../evil", {"cpu": 1})
    with pytest.raises(RequestError) as e:
        Preset.parse("ok", {"cpu": 0})
    assert e.value.field == "cpu"
    with pytest.raises(NotFoundError, match="known presets: gpu-small"):
        find_preset({"gpu-small": p}, "huge")
