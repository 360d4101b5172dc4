"""What belongs to this Berth site: names and ownership checks (design decision 10).

Several Berth installations (two hubs, or a test run beside a live hub) may share one
engine. Everything Berth creates therefore carries its site in its *name* (so two sites
with the same user names never want the same container, network or volume) and in its
``io.jupyter.berth.site`` *label* (so reconcile, cleanup and "leftover" removal can tell
what is theirs). Berth never removes or changes what carries another site's label, or
none.

Names fit the engines' tightest rule, a Swarm service name: letters, digits and ``-``,
at most 63 characters. A container name ends in a short hash of its owner and subject, so
two users who pick the same kernel id get different containers (and neither learns that
the other's exists).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

from .labels import is_managed, key

SITE = "site"
#: Longest name an engine object gets (a Swarm service name's limit).
MAX_NAME = 63
#: Characters of the site id kept in names (the label keeps all of it).
SITE_IN_NAME = 16

_UNSAFE = re.compile(r"[^a-zA-Z0-9-]+")


def _safe(text: str) -> str:
    return _UNSAFE.sub("-", text).strip("-")


def site_tag(site: str) -> str:
    """The site as it appears in names (``""`` for no site)."""
    return _safe(site.lower())[:SITE_IN_NAME].strip("-")


def container_name(site: str, kind: str, owner: str, subject: str) -> str:
    """``berth-<site>-<kind>-<subject>-<hash>``: unique per site, owner and subject; at most 63 characters.

    The subject (a kernel id, a user's server name) is kept readable as far as it fits; the
    hash of ``owner`` and the full ``subject`` keeps names apart when it is cut or when two
    owners pick the same subject.
    """
    digest = hashlib.sha256(f"{site}\0{owner}\0{kind}\0{subject}".encode()).hexdigest()[:8]
    head = "-".join(p for p in ("berth", site_tag(site), kind) if p) + "-"
    room = MAX_NAME - len(head) - len(digest) - 1
    middle = _safe(subject)[: max(0, room)].strip("-")
    return f"{head}{middle}-{digest}" if middle else f"{head}{digest}"


def network_name(prefix: str, site: str, user: str) -> str:
    """A user's network on this site: ``<prefix><site>-<user>`` (``<prefix><user>`` without a site)."""
    safe = re.sub(r"[^a-z0-9_.-]", "-", user.lower())[:48]
    tag = site_tag(site)
    return f"{prefix}{tag}-{safe}" if tag else f"{prefix}{safe}"


def site_of(labels: Mapping[str, str] | None) -> str | None:
    """The site label of an engine object (``None``: not Berth's, or from before sites were labelled)."""
    labels = labels or {}
    if not is_managed(labels):
        return None
    return labels.get(key(SITE)) or None


def belongs_to(labels: Mapping[str, str] | None, site: str) -> bool:
    """True only when the object is Berth's and carries exactly this site's label."""
    return bool(site) and site_of(labels) == site


def foreign_message(what: str, name: str, labels: Mapping[str, str] | None, site: str) -> str:
    """Why Berth leaves ``name`` alone, in words an admin can act on."""
    other = site_of(labels)
    owner = f"Berth site {other!r}" if other else "no Berth site (it carries no site label)"
    return (
        f"a {what} named {name} already exists and belongs to {owner}, not to this site ({site!r}); "
        f"Berth never removes or changes another site's {what}s: remove it yourself if it is a leftover, "
        "or give this site another c.BerthService.site_id"
    )
