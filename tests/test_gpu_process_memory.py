"""GPU memory per kernel from NVML's process list. This host has no GPU: NVML's answer is
*declared* here in its own shape (``processes: [{pid, used_memory_bytes}]``); the PIDs are those
of real containers, so mapping a host PID to its container reads real cgroup files."""

from __future__ import annotations

import os
import uuid

import docker
import pytest

from jupyter_berth.gpu.process_memory import container_of_pid, gpu_memory_by_container

pytestmark = [pytest.mark.docker]
IMAGE = "berth/python:3.11"
MiB = 1024**2


@pytest.fixture
def two_containers():
    client = docker.from_env()
    try:
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"{IMAGE} is missing: run `berth images bootstrap`")
    run = uuid.uuid4().hex[:8]
    made = [
        client.containers.run(
            IMAGE,
            ["sleep", "60"],
            detach=True,
            name=f"berth-test-gpumem-{run}-{i}",
            labels={"io.jupyter.berth.test_run": run},
            network_mode="none",
        )
        for i in range(2)
    ]
    try:
        for c in made:
            c.reload()
        yield [(c.id, c.attrs["State"]["Pid"]) for c in made]
    finally:
        for c in made:
            c.remove(force=True)


def test_a_host_pid_maps_to_its_container(two_containers):
    for container_id, pid in two_containers:
        assert container_of_pid(pid) == container_id
    assert container_of_pid(os.getpid()) is None  # this test runs in no Docker container
    assert container_of_pid(2**22 + 7) is None  # no such process


def test_declared_nvml_processes_sum_per_container(two_containers):
    (a, pid_a), (b, pid_b) = two_containers
    declared_nvml = {  # what inventory.device_metrics returns, per device UUID
        "GPU-declared-0": {
            "processes": [
                {"pid": pid_a, "used_memory_bytes": 512 * MiB},
                {"pid": os.getpid(), "used_memory_bytes": 64 * MiB},
            ]
        },  # not a kernel
        "GPU-declared-1": {
            "processes": [{"pid": pid_a, "used_memory_bytes": 256 * MiB}, {"pid": pid_b, "used_memory_bytes": None}]
        },  # MPS: not told
    }
    assert gpu_memory_by_container(declared_nvml) == {a: 768 * MiB, b: 0}
    assert gpu_memory_by_container(declared_nvml, [b]) == {b: 0}
    assert gpu_memory_by_container({}, [a]) == {a: 0}
