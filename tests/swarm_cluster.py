"""A Docker Swarm of two (or more) nodes on this one machine, made and removed by the tests.

The host's own Docker engine is never touched beyond reading the kernel image (and one
push of it to a registry): every node is an extra ``dockerd`` with its own data root, exec
root, pid file and socket (``unix:///run/berth-swarm-<node>.sock``), started in its own
network namespace (``berth-sw-<node>``) and UTS namespace (so each has its own hostname,
``berth-sw-<node>``) and its own mount namespace (its mounts vanish with it). The nodes
talk over a bridge inside a further namespace, ``berth-sw-hub`` (``10.215.0.0/24``:
hub ``.1``, manager ``.2``, workers ``.3``…): no traffic reaches the host's networks, and
the host's firewall never sees it. Containers of a node live under the cgroup
``/berth-sw-<node>``, so a "power cut" (:meth:`SwarmCluster.crash`) can kill everything
a node ran.

Images go the way a real site distributes them: the host engine pushes
``berth/python:3.11`` to a registry (``docker-registry``) on ``127.0.0.1:5015`` (Docker
trusts plain HTTP on loopback); a second ``docker-registry`` process serves the same
storage to the cluster at ``10.215.0.1:5000`` inside the hub namespace (loopback is per
namespace, so the nodes cannot reach ``127.0.0.1:5015``), and every node pulls from it
(``--insecure-registry 10.215.0.1:5000``). The registry under
``scripts/registry-up.sh`` is not used: the cluster could not reach it, and its storage
belongs to other tests.

Slow parts are cached under ``/var/cache/berth-swarm-test`` (``BERTH_SWARM_CACHE``):
the registry storage, and each node's data root with the image already pulled, keyed by
the image id (a new image build starts a new key; older keys are deleted). A repeated run
starts the cluster in a few seconds.

Run by hand: ``python -m tests.swarm_cluster up`` (prints the addresses, keeps it
running), ``python -m tests.swarm_cluster down`` (removes everything, also after a crashed
run).
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import docker
import docker.errors

from jupyter_berth.runtime.swarm_topology import GWBRIDGE, leave_swarm

CACHE = os.environ.get("BERTH_SWARM_CACHE", "/var/cache/berth-swarm-test")
RUN_DIR = "/run/berth-sw"
PREFIX = "berth-sw"
HUB = f"{PREFIX}-hub"
SUBNET = "10.215.0"
REGISTRY = f"{SUBNET}.1:5000"  #: what the nodes pull from (inside the hub namespace)
PUSH_REGISTRY = "127.0.0.1:5015"  #: the same storage, reachable by the host engine
IMAGE = "berth/python:3.11"
#: Labels every test node carries (the runtime's c.SwarmRuntime.node_labels).
NODE_LABELS = {"berth.kernels": "true"}
LOCK = "/run/berth-swarm-test.lock"


def sh(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run a command, raising with its stderr when it fails."""
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        with open(f"/proc/{pid}/stat") as f:
            if f.read().split(") ", 1)[1].startswith("Z"):
                return False
    return True


def _read_pid(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip() or 0) or None
    except (OSError, ValueError):
        return None


@dataclass
class ClusterNode:
    """One ``dockerd`` of the cluster."""

    name: str  #: "mgr", "w1", ...
    ip: str
    role: str  #: "manager" or "worker"
    data_root: str
    generic_resources: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None

    @property
    def hostname(self) -> str:
        return f"{PREFIX}-{self.name}"

    @property
    def netns(self) -> str:
        return f"{PREFIX}-{self.name}"

    @property
    def exec_root(self) -> str:
        return f"/run/{PREFIX}-{self.name}"

    @property
    def pidfile(self) -> str:
        return f"/run/{PREFIX}-{self.name}.pid"

    @property
    def socket(self) -> str:
        return f"/run/berth-swarm-{self.name}.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def log_path(self) -> str:
        return os.path.join(RUN_DIR, f"dockerd-{self.name}.log")

    @property
    def cgroup_parent(self) -> str:
        return f"/{PREFIX}-{self.name}"

    def client(self, timeout: float = 30) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.url, version="auto", timeout=timeout)

    def log_tail(self, lines: int = 15) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no log)"


class SwarmCluster:
    """Build (:meth:`up`) and remove (:meth:`down`) the test swarm; stop and restart nodes."""

    def __init__(self, workers: int = 1, cache: str = CACHE, image: str = IMAGE, extra_images: tuple[str, ...] = ()):
        self.cache = cache
        self.image = image
        self.image_id: str | None = None
        #: further images every node gets through the registry (e.g. the single-user server image)
        self.extra_images = tuple(extra_images)
        self.image_ids: dict[str, str] = {}
        self.nodes: dict[str, ClusterNode] = {}
        self._workers = workers
        self._lock_fd: int | None = None
        self._registries: list[subprocess.Popen] = []
        self.timings: dict[str, float] = {}

    # -- public --------------------------------------------------------------------------

    @property
    def manager(self) -> ClusterNode:
        return self.nodes["mgr"]

    @property
    def workers(self) -> list[ClusterNode]:
        return [n for n in self.nodes.values() if n.role == "worker"]

    def node_engines(self) -> dict[str, str]:
        """``c.SwarmRuntime.node_engines`` for this cluster (hostname → socket)."""
        return {n.hostname: n.url for n in self.nodes.values()}

    def up(self) -> SwarmCluster:
        t0 = time.monotonic()
        os.makedirs(RUN_DIR, exist_ok=True)
        self._lock_fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)  # one test cluster per machine at a time
        self.cleanup_leftovers()
        for old_log in glob.glob(os.path.join(RUN_DIR, "*.log")):  # logs of this run only
            os.unlink(old_log)
        with contextlib.closing(docker.from_env(timeout=60)) as host:
            self.image_id = host.images.get(self.image).id
            self.image_ids = {ref: host.images.get(ref).id for ref in (self.image, *self.extra_images)}
        key = self.image_id.split(":", 1)[1][:12]
        base = os.path.join(self.cache, key)
        self._prune_cache(keep=key)
        names = ["mgr"] + [f"w{i}" for i in range(1, self._workers + 1)]
        for i, name in enumerate(names):
            self.nodes[name] = ClusterNode(
                name=name,
                ip=f"{SUBNET}.{i + 2}",
                role="manager" if i == 0 else "worker",
                data_root=os.path.join(base, name),
                # Workers advertise a (declared, not real) GPU as Swarm generic resource.
                generic_resources=[] if i == 0 else [f"NVIDIA-GPU=GPU-declared-{PREFIX}-{name}-0"],
            )
        self._network()
        self._start_registries()
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(self.start_daemon, self.nodes.values()))
        self.timings["daemons"] = time.monotonic() - t0
        for node in self.nodes.values():
            self._reset_engine(node)
        self._form_swarm()
        self.timings["swarm"] = time.monotonic() - t0
        self._distribute_image(base)
        self.timings["up"] = time.monotonic() - t0
        return self

    def down(self) -> None:
        """Remove everything: services, containers, swarm membership (and ``docker_gwbridge``),
        daemons, registries, namespaces. Data roots stay in the cache; nothing else remains."""
        problems = []
        for node in self.nodes.values():
            if not self._answers(node):
                with contextlib.suppress(Exception):
                    self.start_daemon(node)  # a crashed node cleans its own state best
        with contextlib.suppress(Exception), contextlib.closing(self.manager.client()) as c:
            for service in c.api.services():
                c.api.remove_service(service["ID"])
        for node in sorted(self.nodes.values(), key=lambda n: n.role == "manager"):  # workers leave first
            try:
                with contextlib.closing(node.client()) as c:
                    for ctr in c.api.containers(all=True):
                        c.api.remove_container(ctr["Id"], force=True, v=True)
                    leave_swarm(c.api, force=True)
                    if any(n["Name"] == GWBRIDGE for n in c.api.networks()):
                        problems.append(f"{node.name}: {GWBRIDGE} left behind")
            except Exception as e:  # noqa: BLE001 - keep cleaning the rest, report at the end
                problems.append(f"{node.name}: {e}")
        for node in self.nodes.values():
            self.stop_daemon(node)
        self.cleanup_leftovers()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        if problems:
            raise RuntimeError("swarm test cluster teardown: " + "; ".join(problems))

    def crash(self, node: ClusterNode) -> None:
        """Power cut: SIGKILL the node's daemon, containerd, shims and every container process."""
        for pid in self._netns_pids(node.netns):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._kill_cgroup(node)
        if node.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while self._netns_pids(node.netns) and time.monotonic() < deadline:
            time.sleep(0.1)

    def start_daemon(self, node: ClusterNode) -> None:
        """Start (or restart) the node's ``dockerd`` and wait until it answers."""
        os.makedirs(node.data_root, exist_ok=True)
        config = os.path.join(RUN_DIR, f"daemon-{node.name}.json")
        with open(config, "w") as f:
            json.dump({}, f)  # never read the host's /etc/docker/daemon.json
        args = [
            "dockerd",
            "--config-file",
            config,
            "--data-root",
            node.data_root,
            "--exec-root",
            node.exec_root,
            "--pidfile",
            node.pidfile,
            "-H",
            node.url,
            "--insecure-registry",
            REGISTRY,
            "--no-new-privileges",
            "--cgroup-parent",
            node.cgroup_parent,
            "--log-level",
            "warn",
        ]
        for res in node.generic_resources:
            args += ["--node-generic-resource", res]
        log = open(node.log_path, "ab")
        node.proc = subprocess.Popen(
            [
                "nsenter",
                f"--net=/run/netns/{node.netns}",
                "--",
                "unshare",
                "--uts",
                "--mount",
                "--propagation",
                "slave",
                "sh",
                "-c",
                'hostname "$0" && exec "$@"',
                node.hostname,
                *args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 30
        while not self._answers(node):
            if node.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dockerd of {node.name} did not start; its log:\n{node.log_tail()}")
            time.sleep(0.2)

    def stop_daemon(self, node: ClusterNode, timeout: float = 20) -> None:
        pid = node.proc.pid if node.proc is not None and node.proc.poll() is None else _read_pid(node.pidfile)
        if pid and _alive(pid):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _alive(pid) and time.monotonic() < deadline:
                if node.proc is not None and node.proc.pid == pid:
                    node.proc.poll()
                time.sleep(0.1)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if node.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.proc.wait(timeout=5)
            node.proc = None

    def wait_node_state(self, node: ClusterNode, state: str, timeout: float = 60) -> float:
        """Seconds until the manager reports ``node`` in ``state`` ("ready", "down")."""
        t0 = time.monotonic()
        with contextlib.closing(self.manager.client()) as c:
            while True:
                found = [n for n in c.api.nodes() if n["Description"]["Hostname"] == node.hostname]
                current = [n["Status"]["State"] for n in found]
                if state in current:
                    return time.monotonic() - t0
                if time.monotonic() - t0 > timeout:
                    raise TimeoutError(f"node {node.hostname} still {current} after {timeout} s (wanted {state})")
                time.sleep(0.25)

    def cleanup_leftovers(self) -> None:
        """Remove what an earlier (crashed) run of this fixture left: daemons, registries, namespaces."""
        names = set(self.nodes) | {os.path.basename(p)[len(PREFIX) + 1 : -4] for p in glob.glob(f"/run/{PREFIX}-*.pid")}
        netns = set(sh("ip", "netns", "list", check=False).stdout.split())
        names |= {n[len(PREFIX) + 1 :] for n in netns if n.startswith(PREFIX + "-") and n != HUB}
        for name in sorted(names):
            node = self.nodes.get(name) or ClusterNode(name=name, ip="", role="worker", data_root="")
            pid = _read_pid(node.pidfile)
            if pid and _alive(pid) and self._is_ours(pid, node):
                self.stop_daemon(node)
            if node.netns in netns:
                self.crash(node)
                sh("ip", "netns", "del", node.netns, check=False)
            self._kill_cgroup(node, remove=True)
            shutil.rmtree(node.exec_root, ignore_errors=True)
            for path in (node.pidfile, node.socket):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
        for proc in self._registries:
            if proc.poll() is None:
                proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
        self._registries = []
        for pidfile in glob.glob(os.path.join(RUN_DIR, "registry-*.pid")):
            pid = _read_pid(pidfile)
            if pid and _alive(pid) and "docker-registry" in _cmdline(pid):
                os.kill(pid, signal.SIGTERM)
            os.unlink(pidfile)
        if HUB in netns:
            for pid in self._netns_pids(HUB):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            sh("ip", "netns", "del", HUB, check=False)
        for leftover in glob.glob(f"/sys/class/net/{PREFIX}-*"):  # host ends of veths whose namespace died
            sh("ip", "link", "del", os.path.basename(leftover), check=False)

    # -- steps ---------------------------------------------------------------------------

    def _prune_cache(self, keep: str, registry_limit: int = 1536 * 1024**2) -> None:
        """Delete the data roots of older images; empty the registry storage once it passes ``registry_limit``
        (each image rebuild adds its changed layers; the next push refills what is needed)."""
        os.makedirs(self.cache, exist_ok=True)
        for entry in os.listdir(self.cache):
            path = os.path.join(self.cache, entry)
            if entry not in (keep, "registry") and os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
        registry = os.path.join(self.cache, "registry")
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(registry) for f in files)
        if size > registry_limit:
            shutil.rmtree(registry, ignore_errors=True)

    def _network(self) -> None:
        sh("ip", "netns", "add", HUB)
        sh("ip", "-n", HUB, "link", "set", "lo", "up")
        sh("ip", "-n", HUB, "link", "add", "bsw0", "type", "bridge")
        sh("ip", "-n", HUB, "addr", "add", f"{SUBNET}.1/24", "dev", "bsw0")
        sh("ip", "-n", HUB, "link", "set", "bsw0", "up")
        for node in self.nodes.values():
            sh("ip", "netns", "add", node.netns)
            sh("ip", "-n", node.netns, "link", "set", "lo", "up")
            sh("ip", "link", "add", node.netns, "type", "veth", "peer", "name", "eth0", "netns", node.netns)
            sh("ip", "link", "set", node.netns, "netns", HUB)
            sh("ip", "-n", HUB, "link", "set", node.netns, "master", "bsw0", "up")
            sh("ip", "-n", node.netns, "addr", "add", f"{node.ip}/24", "dev", "eth0")
            sh("ip", "-n", node.netns, "link", "set", "eth0", "up")
            sh("ip", "-n", node.netns, "route", "add", "default", "via", f"{SUBNET}.1")

    def _start_registries(self) -> None:
        storage = os.path.join(self.cache, "registry")
        os.makedirs(storage, exist_ok=True)
        for where, addr in (("host", PUSH_REGISTRY), ("hub", REGISTRY)):
            config = os.path.join(RUN_DIR, f"registry-{where}.yml")
            with open(config, "w") as f:
                f.write(
                    f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {storage}\n"
                    f"  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n"
                )
            prefix = ["nsenter", f"--net=/run/netns/{HUB}", "--"] if where == "hub" else []
            log = open(os.path.join(RUN_DIR, f"registry-{where}.log"), "ab")
            proc = subprocess.Popen(
                [*prefix, "docker-registry", "serve", config],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            log.close()
            self._registries.append(proc)
            with open(os.path.join(RUN_DIR, f"registry-{where}.pid"), "w") as f:
                f.write(str(proc.pid))
        deadline = time.monotonic() + 15
        while True:
            try:
                urllib.request.urlopen(f"http://{PUSH_REGISTRY}/v2/", timeout=2).read()
                if (
                    sh(
                        "nsenter",
                        f"--net=/run/netns/{HUB}",
                        "--",
                        "curl",
                        "-fsS",
                        "-m",
                        "2",
                        f"http://{REGISTRY}/v2/",
                        check=False,
                    ).returncode
                    == 0
                ):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline or any(p.poll() is not None for p in self._registries):
                raise RuntimeError(f"the test registries did not answer; see {RUN_DIR}/registry-*.log")
            time.sleep(0.2)

    def _answers(self, node: ClusterNode) -> bool:
        try:
            with contextlib.closing(node.client(timeout=3)) as c:
                return bool(c.ping())
        except Exception:  # noqa: BLE001 - any failure means "not answering"
            return False

    def _reset_engine(self, node: ClusterNode) -> None:
        """A cached data root may hold a swarm or containers from an aborted run: drop them."""
        with contextlib.closing(node.client()) as c:
            for ctr in c.api.containers(all=True):
                c.api.remove_container(ctr["Id"], force=True, v=True)
            leave_swarm(c.api, force=True)

    def _form_swarm(self) -> None:
        mgr = self.manager
        with contextlib.closing(mgr.client()) as c:
            spec = c.api.create_swarm_spec(dispatcher_heartbeat_period=1_000_000_000)  # down in seconds, not ~15 s
            c.api.init_swarm(advertise_addr=mgr.ip, listen_addr=f"{mgr.ip}:2377", swarm_spec=spec)
            token = c.api.inspect_swarm()["JoinTokens"]["Worker"]
        for node in self.workers:
            with contextlib.closing(node.client()) as w:
                w.api.join_swarm([f"{mgr.ip}:2377"], token, listen_addr=f"{node.ip}:2377", advertise_addr=node.ip)
        with contextlib.closing(mgr.client()) as c:
            deadline = time.monotonic() + 30
            while True:
                ready = [n for n in c.api.nodes() if n["Status"]["State"] == "ready"]
                if len(ready) == len(self.nodes):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"only {len(ready)} of {len(self.nodes)} swarm nodes became ready")
                time.sleep(0.2)
            for n in ready:
                spec = dict(n["Spec"])
                spec["Labels"] = {**(spec.get("Labels") or {}), **NODE_LABELS}
                c.api.update_node(n["ID"], n["Version"]["Index"], spec)

    def _registry_image_id(self, image: str) -> str | None:
        repo, tag = image.rsplit(":", 1)
        req = urllib.request.Request(
            f"http://{PUSH_REGISTRY}/v2/{repo}/manifests/{tag}",
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return json.load(r)["config"]["digest"]
        except (OSError, KeyError, ValueError):
            return None

    def _distribute_image(self, base: str) -> None:
        """Push the host's images to the registry (those not there) and pull them on every node."""
        marker = os.path.join(base, "image-ready")

        def has(node, image):
            with contextlib.closing(node.client()) as c:
                try:
                    return c.api.inspect_image(f"{REGISTRY}/{image}")["Id"] == self.image_ids[image]
                except docker.errors.NotFound:
                    return False

        images = (self.image, *self.extra_images)
        missing = [(n, i) for i in images for n in self.nodes.values() if not has(n, i)]
        if not missing and os.path.exists(marker):
            return
        t0 = time.monotonic()
        for image in sorted({i for _, i in missing}):
            if self._registry_image_id(image) == self.image_ids[image]:
                continue
            push_ref = f"{PUSH_REGISTRY}/{image}"
            with contextlib.closing(docker.from_env(timeout=600)) as host:
                host.api.tag(image, push_ref.rsplit(":", 1)[0], push_ref.rsplit(":", 1)[1])
                try:
                    for event in host.api.push(
                        push_ref.rsplit(":", 1)[0], tag=push_ref.rsplit(":", 1)[1], stream=True, decode=True
                    ):
                        if event.get("error"):
                            raise RuntimeError(f"push of {push_ref} failed: {event['error']}")
                finally:
                    host.api.remove_image(push_ref)  # only the tag this fixture made
        self.timings["push"] = time.monotonic() - t0

        def pull(node_image):
            node, image = node_image
            ref = f"{REGISTRY}/{image}"
            with contextlib.closing(node.client(timeout=600)) as c:
                for event in c.api.pull(ref.rsplit(":", 1)[0], tag=ref.rsplit(":", 1)[1], stream=True, decode=True):
                    if event.get("error"):
                        raise RuntimeError(f"{node.name}: pull of {ref} failed: {event['error']}")

        with ThreadPoolExecutor(len(missing) or 1) as pool:
            list(pool.map(pull, missing))
        self.timings["pull"] = time.monotonic() - t0 - self.timings["push"]
        if not all(has(n, i) for i in images for n in self.nodes.values()):
            raise RuntimeError(f"after pulling, not every node has {', '.join(images)} as on the host")
        with open(marker, "w") as f:
            f.write(self.image_id)

    # -- processes -------------------------------------------------------------------------

    @staticmethod
    def _netns_pids(netns: str) -> list[int]:
        out = sh("ip", "netns", "pids", netns, check=False).stdout.split()
        return [int(p) for p in out if p.isdigit()]

    @staticmethod
    def _is_ours(pid: int, node: ClusterNode) -> bool:
        return node.socket in _cmdline(pid)

    @staticmethod
    def _kill_cgroup(node: ClusterNode, remove: bool = False) -> None:
        """SIGKILL every process in the node's container cgroups (``--cgroup-parent``); ``remove`` the empty groups."""
        roots = glob.glob(f"/sys/fs/cgroup/*{node.cgroup_parent}") + glob.glob(f"/sys/fs/cgroup{node.cgroup_parent}")
        for _ in range(20):
            pids = set()
            for root in roots:
                for procs in glob.glob(os.path.join(root, "**", "cgroup.procs"), recursive=True):
                    with contextlib.suppress(OSError), open(procs) as f:
                        pids |= {int(p) for p in f.read().split()}
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        if remove:
            for root in roots:
                for path in sorted(glob.glob(os.path.join(root, "**", ""), recursive=True), key=len, reverse=True):
                    with contextlib.suppress(OSError):
                        os.rmdir(path)


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def cluster_available() -> str | None:
    """Why this machine cannot run the test cluster, or ``None`` when it can."""
    if os.geteuid() != 0:
        return "the Swarm test cluster needs root (network namespaces, extra dockerd processes)"
    for tool in ("dockerd", "nsenter", "unshare", "ip", "docker-registry", "curl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (the Swarm test cluster needs it)"
    return None


def main(argv: list[str]) -> int:
    cluster = SwarmCluster()
    if argv[:1] == ["up"]:
        cluster.up()
        print(
            json.dumps(
                {
                    "manager": cluster.manager.url,
                    "engines": cluster.node_engines(),
                    "registry": REGISTRY,
                    "timings": cluster.timings,
                },
                indent=1,
            )
        )
        os.close(cluster._lock_fd)  # leave it running; `down` takes it away
        return 0
    if argv[:1] == ["down"]:
        cluster.cleanup_leftovers()  # a cached data root's swarm state is dropped by the next `up`
        return 0
    print("usage: python -m tests.swarm_cluster up|down", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
