"""Hub groups from a directory's groups at login, so Berth's group policies follow the directory.

Berth's policies hang on the hub's groups (``c.BerthService.group_policies``). With an LDAP
login (``jupyterhub-ldapauthenticator``) the directory knows who is in which class, but the
authenticator only reports the matching group DNs in ``auth_state["ldap_groups"]``. This hook
turns them into hub group names, and JupyterHub (``c.Authenticator.manage_groups = True``)
sets the user's groups from them at every login::

    from jupyter_berth.hub.login_groups import ldap_groups_hook

    c.Authenticator.manage_groups = True
    c.Authenticator.post_auth_hook = ldap_groups_hook()  # cn=class-a,ou=groups,… → "class-a"

A group is named after its DN's first value (``cn=class-a,…`` → ``class-a``) unless
``names`` maps the DN to another name. Only groups the authenticator looked at
(``c.LDAPAuthenticator.allowed_groups``) can be reported, so list every group a policy names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping


def group_name(dn: str, names: Mapping[str, str] | None = None) -> str:
    """``cn=class-a,ou=groups,dc=example,dc=org`` → ``class-a`` (or ``names[dn]``; DNs compared case-blind)."""
    wanted = {k.lower().replace(" ", ""): v for k, v in (names or {}).items()}
    key = dn.lower().replace(" ", "")
    if key in wanted:
        return wanted[key]
    first = dn.split(",", 1)[0]
    return first.split("=", 1)[1].strip() if "=" in first else first.strip()


def ldap_groups_hook(names: Mapping[str, str] | None = None, keep: tuple[str, ...] = ()) -> Callable:
    """A ``post_auth_hook`` that sets ``auth_model["groups"]`` from the LDAP groups the login found.

    ``keep`` names hub groups to add for every user who logs in this way (e.g. a ``students`` group).
    """

    def hook(authenticator, handler, auth_model: dict) -> dict:
        found = (auth_model.get("auth_state") or {}).get("ldap_groups") or []
        groups = sorted({group_name(dn, names) for dn in found} | set(keep))
        auth_model["groups"] = groups
        authenticator.log.info("Berth: %s logs in with groups %s (from LDAP)", auth_model.get("name"), groups)
        return auth_model

    return hook


__all__ = ["group_name", "ldap_groups_hook"]
