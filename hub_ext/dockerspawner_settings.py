"""Every Spawner / DockerSpawner setting an admin may carry over to Berth: honoured, or refused by name.

``BerthSpawner`` is a ``DockerSpawner`` that starts its container through the Berth core, so
DockerSpawner's own ``start()`` never runs. Each of DockerSpawner's and JupyterHub's
``Spawner`` settings is listed in :data:`SETTINGS` with what Berth does with it:

* ``jupyterhub`` — JupyterHub or the Spawner base class acts on it as with any spawner;
* ``honoured`` — Berth gives it its meaning (volumes mounted, extra host config merged
  after the hardening, ``mem_limit`` as the default request bounded by the policy, ...);
* ``refused`` — set to anything but its harmless value, the hub does not start: the message
  names the setting and the Berth setting to use instead.

Settings that would break isolation (``privileged``, added capabilities, the host's network
or PID namespace, a loosened ``security_opt``, the engine's socket in ``volumes``) are
refused by name, always (the rule itself is core's ``runtime/extra_config.py``, re-exported by ``jupyter_berth.start_request``).

:func:`check_config` runs when JupyterHub loads ``BerthSpawner`` for ``c.JupyterHub.spawner_class``
(after reading its whole configuration; the entry point goes through ``jupyter_berth.hub.__getattr__``),
and again for each spawn on the spawner's own values (callables evaluated). docs/admin-hub.md's table lists the
same settings with the same verdicts (tests/test_dockerspawner_settings.py checks it).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jupyter_berth.errors import RequestError
from jupyter_berth.start_request import (
    CREATE_ALLOWED,
    HOST_CONFIG_ALLOWED,
    check_extra,
    isolation_breakers,
)


@dataclass(frozen=True)
class Setting:
    """One Spawner/DockerSpawner setting and what Berth does with it."""

    name: str
    verdict: str  #: "jupyterhub", "honoured" or "refused"
    meaning: str  #: Berth's meaning, or (refused) the Berth setting to use instead
    #: refused only for values where this says yes (None: any value set)
    refuse_if: Callable[[Any], bool] | None = None


def _jh(*names: str) -> list[Setting]:
    return [
        Setting(n, "jupyterhub", "as with any spawner (JupyterHub and the Spawner base class act on it)") for n in names
    ]


SETTINGS: tuple[Setting, ...] = (
    *_jh(
        "apply_user_options",
        "args",
        "auth_state_hook",
        "cmd",
        "consecutive_failure_limit",
        "debug",
        "default_url",
        "disable_user_config",
        "env_keep",
        "group_overrides",
        "http_timeout",
        "hub_connect_url",
        "hub_ip_connect",
        "ip",
        "notebook_dir",
        "oauth_client_allowed_scopes",
        "oauth_roles",
        "options_form",
        "options_from_form",
        "poll_interval",
        "poll_jitter",
        "port",
        "container_port",
        "post_stop_hook",
        "pre_spawn_hook",
        "progress_ready_hook",
        "server_token_scopes",
        "ssl_alt_names",
        "ssl_alt_names_include_local",
        "start_timeout",
        "escape",
    ),
    Setting("environment", "honoured", "set in the server's container (kernels get their own, from the service)"),
    Setting("image", "honoured", "the server image when the user names none"),
    Setting("container_image", "honoured", "old name of image"),
    Setting(
        "allowed_images",
        "honoured",
        "the images the spawn form offers (a list, or {display name: image}); replaces BerthSpawner.offered_images",
    ),
    Setting("image_whitelist", "honoured", "old name of allowed_images"),
    Setting(
        "mem_limit",
        "honoured",
        "the server's memory when the user asks for nothing (default request), bounded by the policy's max_mem",
    ),
    Setting(
        "mem_guarantee",
        "honoured",
        "the default request's memory when mem_limit is unset (Berth reserves what it limits)",
    ),
    Setting(
        "cpu_limit", "honoured", "the server's CPUs when the user asks for nothing, bounded by the policy's max_cpu"
    ),
    Setting("cpu_guarantee", "honoured", "the default request's CPUs when cpu_limit is unset"),
    Setting(
        "volumes",
        "honoured",
        "mounted in the server (named volumes made with the site's label); one at notebook_dir replaces "
        "BerthSpawner.user_volume; the engine's socket is refused",
    ),
    Setting("read_only_volumes", "honoured", "mounted read-only in the server"),
    Setting("format_volume_name", "honoured", "formats the names in volumes and read_only_volumes"),
    Setting(
        "extra_host_config",
        "honoured",
        "merged after Berth's hardening from an allowlist ("
        + ", ".join(sorted(HOST_CONFIG_ALLOWED))
        + "); a GPU device_requests entry becomes the server's GPU request, granted by Berth's ledger",
    ),
    Setting(
        "extra_create_kwargs",
        "honoured",
        "merged after Berth's arguments from an allowlist ("
        + ", ".join(sorted(CREATE_ALLOWED))
        + "; Berth's labels win)",
    ),
    Setting(
        "network_name",
        "honoured",
        "a network the server joins besides its user's own (which it shares with their kernels); 'host' is refused",
        refuse_if=lambda v: str(v).lower() == "host" or str(v).startswith("container:"),
    ),
    Setting("post_start_cmd", "honoured", "run in the server's container once it started, as its user"),
    Setting(
        "name_template",
        "honoured",
        "the container's name ({site} is this Berth site's id; a named server's gets --<name> when it has no {servername})",
    ),
    Setting("container_name_template", "honoured", "old name of name_template"),
    Setting("prefix", "honoured", "{prefix} in name_template"),
    Setting("container_prefix", "honoured", "old name of prefix"),
    Setting("remove", "honoured", "False keeps a stopped server's container until it starts again"),
    Setting("remove_containers", "honoured", "old name of remove"),
    Setting("mounts", "refused", "c.DockerSpawner.volumes / read_only_volumes"),
    Setting("links", "refused", "c.DockerSpawner.network_name"),
    Setting("host_ip", "refused", "nothing: no port is published; the hub reaches servers on the user's network"),
    Setting("container_ip", "refused", "nothing: no port is published"),
    Setting(
        "use_internal_ip",
        "refused",
        "nothing: the hub always reaches a server at its address on the user's network",
        refuse_if=lambda v: not v,
    ),
    Setting("use_internal_hostname", "refused", "nothing: servers are reached by address", refuse_if=bool),
    Setting(
        "pull_policy",
        "refused",
        "build or load server images on the host (`berth images bootstrap --recipe singleuser`); Berth never pulls",
        refuse_if=lambda v: str(v).lower() != "never",
    ),
    Setting("client_kwargs", "refused", "DOCKER_HOST for the hub and the Berth service (one engine, one authority)"),
    Setting("tls_config", "refused", "DOCKER_HOST / DOCKER_TLS_VERIFY / DOCKER_CERT_PATH for the hub and the service"),
    *[
        Setting(n, "refused", "DOCKER_TLS_VERIFY / DOCKER_CERT_PATH for the hub and the service")
        for n in ("tls", "tls_verify", "tls_ca", "tls_cert", "tls_key", "tls_assert_hostname")
    ],
    Setting("use_docker_client_env", "refused", "DOCKER_HOST (always read)", refuse_if=lambda v: not v),
    Setting("certs_volume_name", "refused", "nothing: Berth servers do not take the hub's internal SSL certificates"),
    Setting("move_certs_image", "refused", "nothing: Berth servers do not take the hub's internal SSL certificates"),
)
BY_NAME = {s.name: s for s in SETTINGS}
#: The config sections a BerthSpawner reads, in the order they apply.
SECTIONS = ("Spawner", "DockerSpawner", "BerthSpawner")


def configured(config: Mapping) -> dict[str, tuple[str, Any]]:
    """The Spawner/DockerSpawner settings an admin set: ``{name: (section, value)}``, the last section winning."""
    found = {}
    for section in SECTIONS:
        values = config.get(section) if hasattr(config, "get") else None
        if not values or not hasattr(values, "items"):
            continue
        for name, value in values.items():
            if name in BY_NAME:
                found[name] = (section, value)
    return found


def gpu_device_request(extra_host_config: Mapping | None) -> tuple[float | None, dict]:
    """A GPU ``device_requests`` entry → (the GPUs it asks for, -1 for all; the rest of the host config).

    ``None`` when there is none. Berth grants GPUs through its ledger and hands the granted devices
    over itself, so the entry is taken out; any other device request is left (and refused).
    """
    extra = dict(extra_host_config or {})
    requests = list(extra.get("device_requests") or [])
    gpus, rest = None, []
    for r in requests:
        get = r.get if isinstance(r, Mapping) else lambda k, d=None, r=r: getattr(r, k, d)
        caps = get("capabilities", get("Capabilities", None)) or []
        if any("gpu" in (c if isinstance(c, (list, tuple)) else [c]) for c in caps):
            ids = get("device_ids", get("DeviceIDs", None)) or []
            count = get("count", get("Count", None))
            n = float(len(ids)) if ids else float(count if count not in (None, 0) else -1)
            gpus = -1.0 if n < 0 or (gpus is not None and gpus < 0) else (gpus or 0.0) + n
        else:
            rest.append(r)
    if rest:
        extra["device_requests"] = rest
    else:
        extra.pop("device_requests", None)
    return gpus, extra


def default_request(base: dict, limits: tuple, gpus: float | None) -> dict:
    """BerthSpawner.default_request with the admin's ``mem_limit`` (else ``mem_guarantee``), ``cpu_limit`` (else
    ``cpu_guarantee``) and GPU device request over it (-1 GPUs: every device of the host); the policy bounds it."""
    mem_limit, mem_guarantee, cpu_limit, cpu_guarantee = limits
    request = dict(base)
    mem = mem_limit or mem_guarantee
    cpu = cpu_limit or cpu_guarantee
    if mem:
        request["mem"] = int(mem)
    if cpu:
        request["cpu"] = float(cpu)
    if gpus is not None:
        request["gpu"] = gpus
    return request


def allowed_images(spawner) -> list[tuple[str, str]] | None:
    """DockerSpawner's ``allowed_images`` as ``(image, display name)``; ``None`` when unset (or ``"*"``)."""
    images = spawner._get_allowed_images()
    if not images or images == "*":
        return None
    return [(ref, "" if name == ref else name) for name, ref in images.items()]


def _field(section: str, name: str) -> str:
    return f"c.{section}.{name}"


def check_values(values: Mapping[str, tuple[str, Any]]) -> None:
    """Refuse (``RequestError`` naming ``c.Section.setting``) a refused setting, an isolation breaker, or an
    extra Docker argument outside the allowlist. ``values`` as :func:`configured` returns them."""
    for name, (section, value) in values.items():
        setting = BY_NAME[name]
        if setting.verdict == "refused" and (setting.refuse_if is None or setting.refuse_if(value)):
            raise RequestError(
                _field(section, name),
                f"{value!r} is not supported by BerthSpawner; instead: {setting.meaning} (docs/admin-hub.md)",
            )
        if setting.refuse_if is not None and setting.verdict == "honoured" and setting.refuse_if(value):
            raise RequestError(
                _field(section, name), f"{value!r} is refused: it would share the host's network with the server"
            )
        if callable(value):
            continue  # evaluated per spawn, checked then (check_spawner)
        if name in ("volumes", "read_only_volumes"):
            breakers = isolation_breakers({"volumes": value})
            if breakers:
                raise RequestError(
                    _field(section, name), f"refused: {breakers[0][1]}; Berth never mounts it into a server"
                )
        elif name == "extra_host_config":
            _, rest = gpu_device_request(value)
            _checked(section, name, rest, HOST_CONFIG_ALLOWED)
        elif name == "extra_create_kwargs":
            _checked(section, name, value, CREATE_ALLOWED)


def _checked(section: str, name: str, value, allowed) -> None:
    try:
        check_extra(value, allowed, name)
    except RequestError as e:
        raise RequestError(_field(section, name), e.message.split(": ", 1)[1]) from None


def check_config(config: Mapping) -> None:
    """Refuse the hub's configuration if a BerthSpawner setting in it is refused (see the module doc)."""
    check_values(configured(config))


def check_running_hub() -> None:
    """When JupyterHub loads ``BerthSpawner`` to apply ``c.JupyterHub.spawner_class``: check its configuration.

    traitlets sets the app's traits from a configuration before it merges it into ``app.config``, so the
    check runs at the hub's next turn of its event loop (still in ``initialize``, before the proxy, the
    services or any server start); a refused setting is logged, named, and the hub exits with status 1.
    """
    import asyncio

    try:
        from jupyterhub.app import JupyterHub
    except ImportError:  # pragma: no cover - the hub extra is what imports this module
        return
    if not JupyterHub.initialized():  # the hub is being built (it lists every spawner for its help)
        return
    app = JupyterHub.instance()

    def check() -> None:
        try:
            check_config(app.config)
        except RequestError as e:
            app.log.critical("BerthSpawner refuses this configuration: %s", e.message)
            app.exit(1)

    try:
        asyncio.get_running_loop().call_soon(check)
    except RuntimeError:  # no loop (a script building the app): check at once
        check()


def check_spawner(spawner) -> None:
    """The same check on one spawner's own values (callables evaluated, group overrides applied)."""
    values = {}
    for name in ("volumes", "read_only_volumes", "extra_host_config", "extra_create_kwargs", "network_name"):
        value = getattr(spawner, name, None)
        if callable(value):
            value = value(spawner)
        if inspect.isawaitable(value):  # an async callable: its value is checked by the runtime at start
            if hasattr(value, "close"):
                value.close()
            continue
        values[name] = ("BerthSpawner", value)
    check_values(values)


__all__ = [
    "BY_NAME",
    "SETTINGS",
    "Setting",
    "check_config",
    "check_running_hub",
    "check_spawner",
    "allowed_images",
    "configured",
    "default_request",
    "gpu_device_request",
]
