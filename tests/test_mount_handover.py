"""Mount hand-over on the real engine: running containers get their user's files by propagation.

Two containers start with empty slots (as warm-pool containers do); then alice's named volume
and a read-only folder are handed to one, bob's files to the other. Each sees its own user's
files and nobody else's, the read-only folder is read-only inside, and after release nothing
of theirs stays mounted, on the host or inside. A new ``MountHandover`` (a restarted service)
releases what a gone container left and keeps what a running one still uses.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid

import pytest

from jupyter_berth.errors import EngineError
from jupyter_berth.pool.mount_handover import HandoverError, MountHandover, holders
from jupyter_berth.resources import Resources
from jupyter_berth.runtime import ContainerSpec, DockerRuntime, Mount, make_labels

pytestmark = pytest.mark.docker

IMAGE = "berth/python:3.11"
RUN = uuid.uuid4().hex[:8]
WORK, FOLDERS = "/home/jovyan/work", "/home/jovyan/folders"
TARGETS = (WORK, FOLDERS)


@pytest.fixture
def runtime():
    if MountHandover.unavailable():
        pytest.skip(f"no mount hand-over here: {MountHandover.unavailable()}")
    rt = DockerRuntime()
    try:
        rt.client.ping()
    except EngineError as e:
        pytest.skip(f"no Docker engine: {e.message}")
    yield rt
    for c in rt.client.containers.list(all=True, filters={"label": f"io.jupyter.berth.test_run={RUN}"}):
        c.remove(force=True)
    for v in rt.client.volumes.list(filters={"label": f"io.jupyter.berth.test_run={RUN}"}):
        v.remove(force=True)
    rt.close()


@pytest.fixture
def base():
    with tempfile.TemporaryDirectory(prefix=f"berth-handover-{RUN}-") as path:
        yield path
        for site in os.listdir(path):  # a failed test must leave no mount behind
            h = MountHandover(path, site.removeprefix(".stage-"))
            for n in h.names():
                h.release(n)
        for p in sorted((p for p in _mount_points() if p.startswith(path)), reverse=True):
            os.system(f"umount -l {p}")


def _mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f]


def _files(path: str, files: dict[str, str], uid: int = 1000) -> str:
    os.makedirs(path, exist_ok=True)
    os.chmod(path, 0o755)
    for name, text in files.items():
        with open(os.path.join(path, name), "w") as f:
            f.write(text)
    os.chown(path, uid, uid)
    return path


async def _start(runtime, name: str, slots: list[Mount]):
    return await runtime.run(
        ContainerSpec(
            name=name,
            image=IMAGE,
            command=["sleep", "300"],
            resources=Resources(cpu=0.25, mem=128 * 1024**2, pids=32),
            labels=make_labels("pool", "pool", name, test_run=RUN),
            mounts=slots,
            user="1000:1000",
        )
    )


async def _sh(runtime, cid: str, script: str) -> tuple[int, str]:
    c = await asyncio.to_thread(runtime.client.containers.get, cid)
    code, out = await asyncio.to_thread(c.exec_run, ["sh", "-c", script])
    return code, out.decode()


async def test_an_adopted_container_sees_its_users_files_only_read_only_stays_read_only_and_release_unmounts(
    runtime, base
):
    site = f"t{RUN}"
    h = MountHandover(base, site)
    h.setup()
    h.setup()  # idempotent (a restart)
    volume = await asyncio.to_thread(
        runtime.client.volumes.create, f"berth-test-{RUN}-alice", labels={"io.jupyter.berth.test_run": RUN}
    )
    alice_vol = volume.attrs["Mountpoint"]  # where the engine keeps a named volume on the host
    _files(alice_vol, {"notes.txt": "alice's notes"})
    course = _files(os.path.join(base, "course"), {"syllabus.txt": "week 1"}, uid=0)
    bob_home = _files(os.path.join(base, "bob"), {"secret.txt": "bob's secret"})

    names = [f"berth-test-{RUN}-a", f"berth-test-{RUN}-b"]
    a, b = [await _start(runtime, n, h.slots(n, TARGETS)) for n in names]
    code, out = await _sh(runtime, a.id, f"ls -A {WORK} {FOLDERS}")
    assert code == 0 and "notes.txt" not in out  # waiting: empty slots

    alice = [Mount(alice_vol, WORK), Mount(course, f"{FOLDERS}/course", read_only=True)]
    await asyncio.to_thread(h.hand_over, names[0], TARGETS, alice)
    await asyncio.to_thread(h.hand_over, names[1], TARGETS, [Mount(bob_home, WORK)])

    code, out = await _sh(runtime, a.id, f"cat {WORK}/notes.txt {FOLDERS}/course/syllabus.txt; ls -A {WORK}")
    assert code == 0 and "alice's notes" in out and "week 1" in out and "secret" not in out
    code, out = await _sh(runtime, a.id, f"echo new > {WORK}/mine.txt && cat {WORK}/mine.txt")
    assert (code, out.strip()) == (0, "new")  # the user's volume is writable
    assert open(os.path.join(alice_vol, "mine.txt")).read() == "new\n"
    code, out = await _sh(runtime, a.id, f"touch {FOLDERS}/course/x")
    assert code != 0 and "Read-only file system" in out, out
    code, out = await _sh(runtime, a.id, f"grep ' {FOLDERS}/course ' /proc/self/mountinfo")
    assert " ro," in out, out
    code, out = await _sh(runtime, b.id, f"cat {WORK}/secret.txt; ls -A {WORK} {FOLDERS}")
    assert "bob's secret" in out and "notes" not in out and "course" not in out

    # with the container's process given, a hand-over is checked to have arrived inside; a slot without
    # propagation (here: bound privately, as after its root was unmounted behind the service) is caught
    d_name = f"berth-test-{RUN}-d"
    private = [Mount(m.source, m.target) for m in h.slots(d_name, TARGETS)]  # no rslave
    d = await _start(runtime, d_name, private)
    pid = runtime.client.api.inspect_container(d.id)["State"]["Pid"]
    with pytest.raises(HandoverError, match="did not arrive"):
        await asyncio.to_thread(h.hand_over, d_name, TARGETS, [Mount(bob_home, WORK)], pid)
    assert h.mounted(d_name) == []  # nothing left mounted
    a_pid = runtime.client.api.inspect_container(a.id)["State"]["Pid"]
    h.release(names[0], remove=False)  # (the slots stay: handed over again at once)
    await asyncio.to_thread(h.hand_over, names[0], TARGETS, alice, a_pid)  # arrived: no error
    await runtime.remove(d.id)
    h.release(d_name)

    # a mount that fits no slot is refused before anything is mounted
    with pytest.raises(HandoverError, match="not at or under"):
        h.hand_over(names[1], TARGETS, [Mount(course, "/opt/elsewhere")])

    assert holders(base, course) == [names[0]] and holders(base, bob_home) == [names[1]]  # who holds a folder
    h.release(names[0])
    assert holders(base, course) == []
    assert h.mounted(names[0]) == [] and not os.path.exists(os.path.join(h.root, names[0]))
    code, out = await _sh(runtime, a.id, f"ls -A {WORK}; grep -c ' {WORK}\\| {FOLDERS}/' /proc/self/mountinfo")
    assert "notes.txt" not in out and "syllabus" not in out
    assert open(os.path.join(alice_vol, "notes.txt")).read() == "alice's notes"  # the files themselves stay

    # a restarted service: bob's container is gone, a third one still runs; only bob's is released
    await runtime.remove(b.id)
    c_name = f"berth-test-{RUN}-c"
    c = await _start(runtime, c_name, h.slots(c_name, TARGETS))
    await asyncio.to_thread(h.hand_over, c_name, TARGETS, [Mount(bob_home, WORK)])
    other = MountHandover(base, f"other{RUN}")  # another site's service never touches this site's
    other.setup()
    assert other.clean(keep=[]) == []
    again = MountHandover(base, site)
    again.setup()
    assert again.clean(keep=[c_name]) == [names[1]]
    assert again.mounted(names[1]) == [] and again.mounted(c_name) != []
    code, out = await _sh(runtime, c.id, f"cat {WORK}/secret.txt")
    assert "bob's secret" in out  # the running container keeps its files across the restart
    again.release(c_name)
    code, out = await _sh(runtime, c.id, f"ls -A {WORK}")
    assert "secret" not in out
    assert [p for p in _mount_points() if p.startswith(h.root + "/")] == []
    assert again.teardown() and other.teardown()
    assert [p for p in _mount_points() if p.startswith(base)] == []


def test_plan_says_which_mounts_fit_the_slots():
    assert MountHandover.plan(TARGETS, [Mount("/v", WORK), Mount("/f", f"{FOLDERS}/data", read_only=True)]) is None
    assert "not at or under" in MountHandover.plan(TARGETS, [Mount("/x", "/srv/other")])
    assert "inside another mount" in MountHandover.plan(TARGETS, [Mount("/v", WORK), Mount("/f", f"{WORK}/sub")])
    assert "not at or under" in MountHandover.plan(TARGETS, [Mount("/x", f"{FOLDERS}/../etc")])
