"""The Jinja2 templates of the admin pages and the spawn form, with a search path an admin can put first.

Berth's own templates are in ``hub_ext/templates`` (``page.html``, ``usage.html``,
``usage_plots.html``, ``usage_error.html``, ``spawn_form.html``: the hub's spawner renders
the last one with the same loader and the same ``template_paths``). ``c.BerthHubService.template_paths`` lists
directories searched first, as JupyterHub's ``template_paths`` and KubeSpawner's
``additional_profile_form_template_paths`` do: a file there with the same name replaces
Berth's, and any template can start with ``{% extends "berth/usage.html" %}`` to change only
some blocks of Berth's own (``filters``, ``summary``, ``exports``, ``plots``, ``table``; in
``page.html``: ``title``, ``style``, ``head``, ``body``). Autoescaping is on.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PrefixLoader, StrictUndefined

BUILTIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")


def environment(paths: Sequence[str] = ()) -> Environment:
    """Templates from ``paths`` first, then Berth's; Berth's are also reachable as ``berth/<name>``."""
    builtin = FileSystemLoader(BUILTIN)
    loader = ChoiceLoader([FileSystemLoader(list(paths)), builtin, PrefixLoader({"berth": builtin})])
    return Environment(loader=loader, autoescape=True, undefined=StrictUndefined, trim_blocks=False)


@lru_cache(maxsize=8)
def cached_environment(paths: tuple[str, ...] = ()) -> Environment:
    """:func:`environment`, one per search path (the spawner renders a form per request)."""
    return environment(paths)


def default_environment() -> Environment:
    return cached_environment(())


__all__ = ["BUILTIN", "cached_environment", "default_environment", "environment"]
