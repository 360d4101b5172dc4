"""GPU inventory: the real NVML path on a host without a driver, and declared devices.

This project's machines have no GPU and no NVIDIA driver. The NVML tests call
the real ``pynvml`` (nvidia-ml-py) and check that it fails soft; every device
below is *declared in config*, and the test names say so.
"""

import pytest

from jupyter_berth.errors import RequestError
from jupyter_berth.gpu import GpuDevice, device_metrics, device_metrics_async, discover, discover_async, parse_declared

GiB = 1024**3


def _host_has_nvidia_driver() -> bool:
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    pynvml.nvmlShutdown()
    return True


no_driver = pytest.mark.skipif(
    _host_has_nvidia_driver(), reason="this host has an NVIDIA driver; the no-driver path cannot be observed"
)


@no_driver
def test_nvml_without_driver_gives_empty_inventory_with_reason():
    inventory = discover()
    assert inventory.devices == []
    assert not inventory
    assert inventory.source == "none"
    assert inventory.driver_version is None and inventory.cuda_version is None
    assert inventory.message.startswith("no NVIDIA GPU on this host (")
    assert "libnvidia-ml.so.1" in inventory.message and "no NVIDIA driver" in inventory.message
    assert inventory.to_json()["devices"] == []


@no_driver
async def test_nvml_discovery_off_the_event_loop_fails_soft_too():
    inventory = await discover_async()
    assert inventory.source == "none"
    assert inventory.message.startswith("no NVIDIA GPU on this host")


@no_driver
async def test_device_metrics_without_nvml_is_empty():
    assert device_metrics(["GPU-5f3c0000-0000-0000-0000-000000000000"]) == {}
    assert device_metrics([]) == {}
    assert await device_metrics_async(["GPU-0"]) == {}


@no_driver
def test_empty_declared_list_falls_back_to_nvml():
    assert discover([]).source == "none"


def test_declared_gpus_are_parsed_and_labelled_declared():
    inventory = discover(
        [
            {"uuid": "GPU-bbbb", "name": "NVIDIA A100 80GB PCIe", "memory": "80G", "index": 1},
            {"uuid": "GPU-aaaa", "name": "Tesla T4", "memory": "16GiB", "index": 0},
        ]
    )
    assert inventory.source == "declared"
    assert "2 GPUs declared in configuration" in inventory.message
    assert [d.uuid for d in inventory.devices] == ["GPU-aaaa", "GPU-bbbb"]  # ordered by index
    t4 = inventory.by_uuid()["GPU-aaaa"]
    assert t4 == GpuDevice(index=0, uuid="GPU-aaaa", name="Tesla T4", memory_bytes=16 * GiB, declared=True)
    assert all(d.declared for d in inventory.devices)
    assert inventory.to_json()["devices"][1]["memory"] == "80 GiB"


def test_declared_gpu_index_defaults_to_position_and_node_is_kept():
    devices = parse_declared(
        [
            {"uuid": "MIG-1111", "name": "A100 MIG 1g.10gb", "memory": "10G", "node": "gpu-node-2"},
            {"uuid": "MIG-2222", "name": "A100 MIG 1g.10gb", "memory": "10G", "node": "gpu-node-2"},
        ]
    )
    assert [(d.index, d.node) for d in devices] == [(0, "gpu-node-2"), (1, "gpu-node-2")]


@pytest.mark.parametrize(
    "entries, field, words",
    [
        ([{"name": "T4", "memory": "16G"}], "gpus[0].uuid", "required"),
        ([{"uuid": "GPU-a", "memory": "16G"}], "gpus[0].name", "required"),
        ([{"uuid": "GPU-a", "name": "T4"}], "gpus[0].memory", "required"),
        ([{"uuid": "GPU-a", "name": "T4", "memory": "16X"}], "gpus[0].memory", "unknown unit"),
        ([{"uuid": "GPU-a", "name": "T4", "memory": "-1G"}], "gpus[0].memory", "size"),
        ([{"uuid": "GPU-a,GPU-b", "name": "T4", "memory": "16G"}], "gpus[0].uuid", "no commas"),
        ([{"uuid": 7, "name": "T4", "memory": "16G"}], "gpus[0].uuid", "not a device UUID"),
        ([{"uuid": "GPU-a", "name": "T4", "memory": "16G", "index": -1}], "gpus[0].index", "whole number"),
        ([{"uuid": "GPU-a", "name": "T4", "memory": "16G", "index": True}], "gpus[0].index", "whole number"),
        ([{"uuid": "GPU-a", "name": "T4", "memory": "16G", "mem": "1G"}], "gpus[0].mem", "unknown field"),
        (["GPU-a"], "gpus[0]", "not a device"),
        ({"uuid": "GPU-a", "name": "T4", "memory": "16G"}, "gpus", "expected a list"),
        (
            [{"uuid": "GPU-a", "name": "T4", "memory": "16G"}, {"uuid": "GPU-a", "name": "T4", "memory": "16G"}],
            "gpus[1].uuid",
            "declared twice",
        ),
        (
            [
                {"uuid": "GPU-a", "name": "T4", "memory": "16G"},
                {"uuid": "GPU-b", "name": "T4", "memory": "16G", "index": 0},
            ],
            "gpus[1].index",
            "used twice",
        ),
    ],
)
def test_bad_declared_gpu_entries_are_refused_naming_the_field(entries, field, words):
    with pytest.raises(RequestError) as e:
        discover(entries)
    assert e.value.field == field
    assert e.value.message.startswith(field + ":")
    assert words in e.value.message
    assert e.value.status == 400


class FakeNvmlDriver:
    """Test double for an NVIDIA driver, which cannot exist on these machines.

    Stands in for the C library behind the real ``pynvml`` module: two GPUs (one
    with MIG on) and a third that NVML lists but cannot read (a "lost" GPU). Only
    the parsing in ``inventory`` is exercised; real hardware is left to
    ``benchmarks/gpu_enforcement_check.py``.
    """

    def __init__(self, pynvml):
        self.pynvml, self.shutdowns = pynvml, 0

    def install(self, monkeypatch):
        p = self.pynvml
        devices = {
            0: ("GPU-aaaa", "Tesla T4", 16 * GiB, p.NVMLError(p.NVML_ERROR_NOT_SUPPORTED)),
            1: ("GPU-bbbb", "NVIDIA A100 80GB PCIe", 80 * GiB, [p.NVML_DEVICE_MIG_ENABLE, p.NVML_DEVICE_MIG_ENABLE]),
        }

        def handle(i):
            if i == 2:
                raise p.NVMLError(p.NVML_ERROR_GPU_IS_LOST)
            return i

        def mig(h):
            value = devices[h][3]
            if isinstance(value, Exception):
                raise value
            return value

        class Memory:
            def __init__(self, total):
                self.total, self.used = total, total // 4

        def shutdown():
            self.shutdowns += 1

        for name, fn in {
            "nvmlInit": lambda: None,
            "nvmlShutdown": shutdown,
            "nvmlSystemGetDriverVersion": lambda: "550.54.15",
            "nvmlSystemGetCudaDriverVersion": lambda: 12040,
            "nvmlDeviceGetCount": lambda: 3,
            "nvmlDeviceGetHandleByIndex": handle,
            "nvmlDeviceGetUUID": lambda h: devices[h][0],
            "nvmlDeviceGetName": lambda h: devices[h][1],
            "nvmlDeviceGetMemoryInfo": lambda h: Memory(devices[h][2]),
            "nvmlDeviceGetMigMode": mig,
        }.items():
            monkeypatch.setattr(p, name, fn)


def test_nvml_parsing_with_fake_nvml_driver_test_double(monkeypatch):
    import pynvml

    driver = FakeNvmlDriver(pynvml)
    driver.install(monkeypatch)
    inventory = discover()
    assert inventory.source == "nvml"
    assert (inventory.driver_version, inventory.cuda_version) == ("550.54.15", "12.4")
    assert [(d.index, d.uuid, d.name, d.memory_bytes, d.mig_mode, d.declared) for d in inventory.devices] == [
        (0, "GPU-aaaa", "Tesla T4", 16 * GiB, False, False),
        (1, "GPU-bbbb", "NVIDIA A100 80GB PCIe", 80 * GiB, True, False),
    ]
    assert inventory.message.startswith(
        "2 NVIDIA GPUs found by NVML (driver 550.54.15, CUDA 12.4); 1 could not be read: device 2"
    )
    assert driver.shutdowns == 1  # NVML is always released


def test_declared_nvml_processes_under_mps_are_merged_by_pid_with_fake_nvml_driver_test_double(monkeypatch):
    """MPS clients appear only in NVML's MPS list; both lists are asked and merged by host PID."""
    import pynvml

    class Process:
        def __init__(self, pid, used):
            self.pid, self.usedGpuMemory = pid, used

    class Memory:
        total, used = 16 * GiB, 5 * GiB

    class Utilization:
        gpu = 40

    MiB = 1024**2
    lists = {
        "nvmlDeviceGetComputeRunningProcesses": [Process(100, 512 * MiB), Process(200, None)],
        "nvmlDeviceGetMPSComputeRunningProcesses": [
            Process(200, 256 * MiB),
            Process(300, 1024 * MiB),
            Process(100, None),
        ],
    }
    for name, fn in {
        "nvmlInit": lambda: None,
        "nvmlShutdown": lambda: None,
        "nvmlDeviceGetHandleByUUID": lambda uuid: uuid,
        "nvmlDeviceGetMemoryInfo": lambda h: Memory(),
        "nvmlDeviceGetUtilizationRates": lambda h: Utilization(),
        **{query: (lambda h, found=found: found) for query, found in lists.items()},
    }.items():
        monkeypatch.setattr(pynvml, name, fn)
    (metrics,) = device_metrics(["GPU-declared-mps"]).values()
    assert sorted((p["pid"], p["used_memory_bytes"]) for p in metrics["processes"]) == [
        (100, 512 * MiB),  # known from the compute list, unknown in the MPS list: kept
        (200, 256 * MiB),  # unknown in the compute list, known from the MPS list
        (300, 1024 * MiB),  # an MPS client only NVML's MPS list shows
    ]

    def not_supported(handle):
        raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)

    monkeypatch.setattr(pynvml, "nvmlDeviceGetMPSComputeRunningProcesses", not_supported)
    (metrics,) = device_metrics(["GPU-declared-mps"]).values()
    assert sorted(p["pid"] for p in metrics["processes"]) == [100, 200]  # one list unsupported: the other stays
