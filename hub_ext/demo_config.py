"""The configuration of the one-command hub demo (``scripts/hub-demo.sh``), importable by tests.

``scripts/hub-demo.sh`` writes two short files into its state directory::

    # jupyterhub_config.py
    from jupyter_berth.hub.demo_config import configure
    configure(c, state_dir="/var/lib/berth-demo")

    # jupyter_berth_config.py (read by the Berth service)
    from jupyter_berth.hub.demo_config import configure_berth
    configure_berth(c, state_dir="/var/lib/berth-demo")

so the hub, the spawner and the service share one set of policies and one ledger.

**DEMO ONLY**: users log in with :class:`~jupyterhub.auth.DummyAuthenticator` and one
shared password. Never expose this hub beyond 127.0.0.1; for a real installation use a
real authenticator (docs/classroom.md has a tested LDAP recipe, jupyter_berth.hub.login_groups).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys

#: The demo's users, all in the group ``class-a``; ``teacher`` is also a hub admin.
DEMO_USERS = ("alice", "bob", "teacher")
DEMO_GROUP = "class-a"
#: DEMO ONLY: the password every demo user logs in with.
DEMO_PASSWORD = "berth-demo"
SERVICE_NAME = "berth"

#: Policies of the demo (see docs/policies.md): a class with a small share each, a teacher with more.
DEFAULT_POLICY = {
    "max_cpu": 1,
    "max_mem": "2G",
    "total_cpu": 2,
    "total_mem": "4G",
    "max_kernels": 2,
    "idle_timeout": 3600,
    "default": {"cpu": 0.5, "mem": "512M"},
}
GROUP_POLICIES = {
    DEMO_GROUP: {
        "max_cpu": 1,
        "max_mem": "2G",
        "total_cpu": 1.5,
        "total_mem": "3G",
        "max_kernels": 2,
        "idle_timeout": 1200,
        "max_lifetime": 4 * 3600,
    }
}
USER_POLICIES = {"teacher": {"max_cpu": 2, "max_mem": "4G", "total_cpu": 3, "total_mem": "6G", "max_kernels": 4}}


def default_state_dir() -> str:
    """``/var/lib/berth-demo`` for root, ``~/.local/share/berth-demo`` otherwise."""
    if os.geteuid() == 0:
        return "/var/lib/berth-demo"
    return os.path.expanduser("~/.local/share/berth-demo")


def docker_host_ip(default: str = "172.17.0.1") -> str:
    """The host's address on Docker's default bridge (``docker0``): reachable from every container.

    Containers on any bridge network reach the host at its local addresses, so the hub's
    API and the Berth service listen there (not on 0.0.0.0, not on 127.0.0.1, which
    containers cannot reach).
    """
    try:
        import docker

        client = docker.from_env(timeout=10)
        try:
            configs = client.api.inspect_network("bridge").get("IPAM", {}).get("Config") or []
        finally:
            client.close()
        for cfg in configs:
            if cfg.get("Gateway"):
                return cfg["Gateway"]
    except Exception:  # noqa: BLE001 - no engine yet or no default bridge: the usual address
        pass
    return default


def configure_berth(c, state_dir: str, *, cpu_overcommit: float = 4.0, policies: dict | None = None) -> None:
    """The core's settings (ledger, policies, capacity), shared by the hub, the spawner and the service."""
    c.BerthService.data_dir = os.path.join(state_dir, "berth")
    c.BerthService.cpu_overcommit = cpu_overcommit
    c.BerthService.default_policy = dict((policies or {}).get("default", DEFAULT_POLICY))
    c.BerthService.group_policies = dict((policies or {}).get("groups", GROUP_POLICIES))
    c.BerthService.user_policies = dict((policies or {}).get("users", USER_POLICIES))
    c.BerthService.presets = {
        "small": {"cpu": 0.25, "mem": "256M", "display_name": "Small (¼ CPU, 256 MiB)"},
        "standard": {"cpu": 1, "mem": "1G", "display_name": "Standard (1 CPU, 1 GiB)"},
    }


def configure(
    c,
    state_dir: str,
    *,
    ip: str = "127.0.0.1",
    port: int = 8000,
    hub_port: int = 8081,
    service_port: int = 10101,
    proxy_api_port: int = 8001,
    users=DEMO_USERS,
    password: str = DEMO_PASSWORD,
    server_idle_timeout: int = 3600,
    cpu_overcommit: float = 4.0,
    policies: dict | None = None,
    host_ip: str | None = None,
    service_config: str | None = None,
) -> None:
    """Everything the demo hub needs: the Berth spawner and service, users, group, policies, culling."""
    os.makedirs(state_dir, exist_ok=True)
    configure_berth(c, state_dir, cpu_overcommit=cpu_overcommit, policies=policies)
    host_ip = host_ip or docker_host_ip()
    users = list(users)

    c.JupyterHub.bind_url = f"http://{ip}:{port}"
    c.JupyterHub.hub_ip = host_ip  # user containers reach the hub's API here (docker0), not on 127.0.0.1
    c.JupyterHub.hub_port = hub_port
    c.JupyterHub.hub_connect_ip = host_ip
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{proxy_api_port}"
    c.ConfigurableHTTPProxy.pid_file = os.path.join(state_dir, "jupyterhub-proxy.pid")
    c.JupyterHub.db_url = f"sqlite:///{os.path.join(state_dir, 'jupyterhub.sqlite')}"
    c.JupyterHub.cookie_secret_file = os.path.join(state_dir, "jupyterhub_cookie_secret")
    c.JupyterHub.cleanup_servers = True  # Ctrl-C stops the users' servers too

    # DEMO ONLY: one shared password, no real accounts. Use a real authenticator in production.
    c.JupyterHub.authenticator_class = "dummy"
    c.DummyAuthenticator.password = password
    c.Authenticator.allowed_users = set(users)
    c.Authenticator.admin_users = {u for u in users if u == "teacher"}
    c.JupyterHub.load_groups = {DEMO_GROUP: {"users": users}}

    c.JupyterHub.spawner_class = "berth"
    with contextlib.suppress(RuntimeError):  # no event loop: read outside JupyterHub (tests of this config)
        from jupyter_berth.hub.spawner import open_when_hub_starts

        open_when_hub_starts()  # the server pool fills before the first spawn
    c.BerthSpawner.service_url = f"http://{host_ip}:{service_port}/services/{SERVICE_NAME}/"
    c.BerthSpawner.server_idle_timeout = server_idle_timeout
    c.BerthSpawner.default_request = {"cpu": 0.5, "mem": "768M"}

    service_config = service_config or os.path.join(state_dir, "jupyter_berth_config.py")
    services = [
        {
            "name": SERVICE_NAME,
            "url": f"http://{host_ip}:{service_port}",
            "command": [sys.executable, "-m", "jupyter_berth.hub.service", f"--config={service_config}"],
            "oauth_no_confirm": True,
            # a managed service gets only the environment it is given: pass on the labels for what Berth creates
            "environment": {k: os.environ[k] for k in ("BERTH_EXTRA_LABELS",) if k in os.environ},
        }
    ]
    roles = [
        {"name": "user", "scopes": ["self", f"access:services!service={SERVICE_NAME}"]},
        # the service checks that a folder is shared with a user or group that exists
        {"name": "berth-service", "services": [SERVICE_NAME], "scopes": ["read:users:name", "read:groups:name"]},
        {
            "name": "server",
            "scopes": [
                "users:activity!user",
                "access:servers!server",
                "read:users:groups!user",
                f"access:services!service={SERVICE_NAME}",
            ],
        },
    ]
    if server_idle_timeout and importlib.util.find_spec("jupyterhub_idle_culler") is not None:
        services.append(
            {
                "name": "idle-culler",
                "command": [
                    sys.executable,
                    "-m",
                    "jupyterhub_idle_culler",
                    f"--timeout={int(server_idle_timeout)}",
                    f"--cull-every={max(30, int(server_idle_timeout) // 10)}",
                ],
            }
        )
        roles.append(
            {
                "name": "idle-culler",
                "services": ["idle-culler"],
                "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
            }
        )
    c.JupyterHub.services = services
    c.JupyterHub.load_roles = roles


def stop_leftovers(state_dir: str) -> int:
    """Remove every container of the demo's Berth site and release its allocations; returns how many.

    ``scripts/hub-demo.sh`` runs this after the hub has stopped (Ctrl-C), so that nothing the
    demo started keeps running: the hub stops servers (and their kernels) itself, this catches
    a kernel whose server was killed before it could stop it.
    """
    import hashlib

    import docker

    from jupyter_berth.ledger import Ledger

    ledger = Ledger(data_dir=os.path.join(state_dir, "berth"))
    try:
        site = hashlib.sha256(ledger.url.encode()).hexdigest()[:12]
        client = docker.from_env()
        removed = 0
        for container in client.containers.list(all=True, filters={"label": [f"io.jupyter.berth.site={site}"]}):
            container.remove(force=True)
            removed += 1
        for alloc in ledger.live_allocations():
            ledger.release(alloc.id, "shutdown", message="the demo hub was stopped")
        return removed
    finally:
        ledger.close()


__all__ = [
    "DEMO_GROUP",
    "DEMO_PASSWORD",
    "DEMO_USERS",
    "configure",
    "configure_berth",
    "default_state_dir",
    "docker_host_ip",
    "stop_leftovers",
]
