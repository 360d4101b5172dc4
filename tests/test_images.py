"""Image versions side by side: the catalog, admin operations (offer, hide, default, alias, retire,
pull, push, build, GC) and the CLI. The REST API is in test_images_api.py.

Real Docker, a real local registry (Debian's docker-registry on 127.0.0.1, brought up by
scripts/registry-up.sh), real kernels. Every image these tests make is named ``berthtest-<run>/*``
(services here offer only that pattern), so no other Berth installation on the engine sees them;
they are removed at the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid

import docker
import pytest

from jupyter_berth.errors import ConflictError, NotFoundError, PolicyError, RequestError
from jupyter_berth.images import build as image_build
from jupyter_berth.images import catalog
from jupyter_berth.images import state as catalog_state
from jupyter_berth.images.catalog import ImageRetiredError
from jupyter_berth.kernelspecs import image_kernel_name, plan

from .image_fixtures import (  # noqa: F401  (versions, svc: fixtures)
    BASE,
    CUR,
    EXTRA,
    LATEST,
    NAMESPACE,
    OFFERED,
    OLD,
    REPO,
    ROOT,
    SMALL,
    _build,
    _label,
    kid,
    run_code,
    service_config,
    svc,
    versions,
)

pytestmark = [pytest.mark.docker]


# -- pure parts: references, nearest version, environments, build plans ----------------------------


def test_references_are_validated_and_parsed():
    assert catalog.parse_ref("127.0.0.1:5000/berth/python:3.11").domain == "127.0.0.1:5000"
    assert catalog.parse_ref("127.0.0.1:5000/berth/python:3.11").local == "berth/python:3.11"
    assert catalog.parse_ref("berth/python:3.11").domain is None
    assert catalog.normalise_ref("berth/python") == "berth/python:latest"
    for bad in (
        "",
        "Berth/Python:3.11",
        "berth/python:3.11; rm -rf /",
        "-x",
        "a" * 300,
        None,
        7,
        "berth//python",
        "berth/python:",
    ):
        with pytest.raises(RequestError) as info:
            catalog.validate_ref(bad)
        assert info.value.status == 400 and "berth/python:3.11" in info.value.message
    with pytest.raises(RequestError, match="needs a tag"):
        catalog.validate_ref("berth/python", tag_required=True)
    catalog.validate_digest("sha256:" + "a" * 64)
    catalog.validate_digest("127.0.0.1:5000/berth/python@sha256:" + "b" * 64)
    with pytest.raises(RequestError, match="not a digest"):
        catalog.validate_digest("sha256:xyz")


def _attrs(image_id: str, tag: str, *, digests=(), **labels) -> dict:
    full = {
        "io.jupyter.berth.kind": "kernel",
        "io.jupyter.berth.language": "python",
        **{f"io.jupyter.berth.{k}": v for k, v in labels.items()},
    }
    return {
        "Id": image_id,
        "RepoDigests": list(digests),
        "Size": 1,
        "Created": "2026-11-22T00:00:00Z",
        "Config": {"Labels": full},
    }


def _view(states=None, aliases=None, offer_new=True):
    ids = {
        t: "sha256:" + c * 64
        for t, c in (
            ("3.10", "a"),
            ("3.11", "b"),
            ("3.11-extra", "c"),
            ("3.12", "d"),
            ("2.0-cuda", "e"),
            ("2.1-cuda", "f"),
            ("2.1-cpu", "1"),
        )
    }
    found = [(f"berth/python:{t}", _attrs(i, t)) for t, i in ids.items() if not t.startswith("2.")]
    found += [(f"berth/torch:{t}", _attrs(i, t)) for t, i in ids.items() if t.startswith("2.")]
    found.append(("other/thing:1", _attrs("sha256:" + "9" * 64, "1")))
    return catalog.build_view(
        found, ["berth/*"], states or {}, aliases or {}, offer_new=offer_new, configured_default="berth/python:3.11"
    ), ids


class _State:
    def __init__(self, state, is_default=False, replacement=None, digest=None):
        self.state, self.is_default, self.replacement, self.digest = state, is_default, replacement, digest
        self.source = self.updated_at = self.updated_by = None


def test_nearest_version_and_environment_answers():
    view, ids = _view(
        {
            "berth/python:3.10": _State("retired"),
            "berth/torch:2.0-cuda": _State("retired"),
            "berth/python:3.12": _State("hidden"),
        }
    )
    assert [i.ref for i in view] == [
        "berth/python:3.11",
        "berth/python:3.11-extra",
        "berth/torch:2.1-cpu",
        "berth/torch:2.1-cuda",
    ]
    assert view.default_ref == "berth/python:3.11" and view.get("berth/python:3.11").default
    assert "other/thing:1" not in view.entries  # outside the offered_images patterns
    assert view.nearest("berth/python:3.10").ref == "berth/python:3.11"  # newer, same flavour
    assert view.nearest("berth/torch:2.0-cuda").ref == "berth/torch:2.1-cuda"  # same flavour beats same version
    with pytest.raises(ImageRetiredError) as info:
        catalog.find(view, "berth/python:3.10")
    assert info.value.message == "berth/python:3.10 is retired; use berth/python:3.11" and info.value.status == 404
    with pytest.raises(NotFoundError, match="not offered on this host; offered images: berth/python:3.11, "):
        catalog.find(view, "berth/python:3.12")  # hidden is simply not offered
    # An admin's named replacement wins over the nearest.
    view2, _ = _view({"berth/python:3.10": _State("retired", replacement="berth/python:3.11-extra")})
    assert (
        catalog.resolve_environment(view2, "berth/python:3.10", ids["3.10"])["nearest"]["image"]
        == "berth/python:3.11-extra"
    )

    answer = catalog.resolve_environment(view, "berth/python:3.11", ids["3.11"])
    assert answer["status"] == "available" and answer["image"] == "berth/python:3.11"
    moved = catalog.resolve_environment(view, "berth/python:3.9", ids["3.11-extra"])  # same content under another name
    assert moved["status"] == "available" and moved["image"] == "berth/python:3.11-extra"
    retired = catalog.resolve_environment(view, "berth/python:3.10", ids["3.10"])
    assert retired["status"] == "retired" and retired["nearest"]["image"] == "berth/python:3.11"
    assert retired["message"] == "berth/python:3.10 is retired; use berth/python:3.11"
    rebuilt = catalog.resolve_environment(view, "berth/python:3.11", "sha256:" + "7" * 64)
    assert rebuilt["status"] == "replaced" and rebuilt["nearest"]["digest"] == ids["3.11"]
    unknown = catalog.resolve_environment(view, "berth/python:3.12", ids["3.12"])  # hidden: not disclosed
    assert unknown["status"] == "unknown" and unknown["nearest"]["image"] == "berth/python:3.11"
    # Registry digests match too, with or without the repository part.
    pulled = catalog.build_view(
        [("berth/python:3.11", _attrs(ids["3.11"], "3.11", digests=["reg:5000/berth/python@sha256:" + "5" * 64]))],
        ["berth/*"],
        {},
        {},
        offer_new=True,
        configured_default=None,
    )
    assert catalog.resolve_environment(pulled, "berth/python:3.11", "sha256:" + "5" * 64)["status"] == "available"
    # offer_new_images=False: images with no decision are hidden.
    assert list(_view(offer_new=False)[0]) == []


def test_build_plans_check_their_source():
    base_id = "sha256:" + "b" * 64
    assert image_build.dockerfile_on_base("RUN true\n", BASE, base_id).startswith(f"FROM {base_id}\nRUN true")
    assert (
        image_build.dockerfile_on_base("# hi\nARG X\nFROM berth/python:3.11\nRUN true", BASE, base_id).splitlines()[2]
        == f"FROM {base_id}"
    )
    for bad, why in (
        ("FROM debian:12\nRUN true", "must name the base"),
        ("FROM x AS a\nFROM y", "multi-stage"),
        ("RUN a\nFROM berth/python:3.11", "only comments and ARG"),
        ("", "not empty"),
    ):
        with pytest.raises(RequestError, match=why):
            image_build.dockerfile_on_base(bad, BASE, base_id)
    with pytest.raises(RequestError, match="exactly one of dockerfile, requirements, environment"):
        image_build.plan_build(base_ref=BASE, base_id=base_id, dockerfile="RUN true", requirements="x")
    env = "name: sci\ndependencies:\n  - python=3.11\n  - pip\n  - numpy=1.26\n  - pip:\n    - requests>=2\n"
    text, notes = image_build.environment_requirements(env, "3.11.2")
    assert text.splitlines() == ["numpy==1.26", "requests>=2"] and "installed with pip as 'numpy==1.26'" in notes[0]
    with pytest.raises(RequestError, match="asks for python 3.12 but the base has Python 3.11.2"):
        image_build.environment_requirements("dependencies: [python=3.12, numpy]", "3.11.2")
    with pytest.raises(RequestError, match="no conda"):
        image_build.environment_requirements("dependencies: [{conda-forge: x}]", "3.11.2")
    req = image_build.plan_build(
        base_ref=BASE, base_id=base_id, requirements="Traitlets==5.*  # ui\n-r other.txt\npandas[perf]>2\n"
    )
    assert req.dists == ["traitlets", "pandas"] and "/opt/venv/bin/pip install" in req.dockerfile
    assert image_build.label_line({"a": 'x "$HOME"'}) == 'LABEL "a"="x \\"\\$HOME\\""\n'


# -- the service against the engine -----------------------------------------------------------------


async def test_catalog_lists_versions_with_their_labels(svc, versions):
    view = await svc.images.catalog_view()
    assert [i.ref for i in view] == [CUR, EXTRA]
    cur, extra = (i.to_json() for i in view)
    assert cur["default"] and not extra["default"] and svc.default_image == CUR
    assert extra["display_name"] == "Python 3.11 (extra)" and extra["version"] == "3.11-extra" and extra["name"] == REPO
    assert extra["language"] == "python" and extra["language_version"].startswith("3.11")
    assert any(f.startswith("ipykernel ") for f in extra["frameworks"])
    assert extra["min_resources"] == {"cpu": 0.25, "mem": 256 * 2**20} and extra["gpu"] is False
    assert extra["id"] == versions["extra"] and extra["digest"] and extra["size"] > 10**6 and extra["created"]
    assert extra["state"] == "offered" and extra["present"]
    # Kernelspecs: one per offered version, names stable, the default marked.
    specs = {p.name: p.spec for p in plan(view, [], svc.default_image)}
    assert set(specs) == {image_kernel_name(CUR), image_kernel_name(EXTRA)}
    assert specs[image_kernel_name(CUR)]["metadata"]["jupyter_berth"]["default"] is True


async def test_two_versions_run_side_by_side(svc, versions):
    a, b = await asyncio.gather(
        svc.start_kernel("ann", kernel_id=kid(), image=CUR, request={"cpu": 0.5, "mem": "256M"}),
        svc.start_kernel("ann", kernel_id=kid(), image=EXTRA, request={"cpu": 1, "mem": "512M"}),
    )
    probe = "import os; print(os.path.exists('/etc/berth-extra'), os.cpu_count() is not None)"
    out_a, out_b = await asyncio.gather(run_code(a, probe), run_code(b, probe))
    assert out_a.split()[0] == "False" and out_b.split()[0] == "True"
    ia, ib = await asyncio.gather(svc.runtime.inspect(a.container_id), svc.runtime.inspect(b.container_id))
    assert ia.running and ib.running and ia.image_id == versions["base"] and ib.image_id == versions["extra"]
    # Each kernel records the digest it runs; the notebook records the same.
    live = {x.subject: x for x in await svc.list_kernels("ann")}
    assert (
        live[a.kernel_id].image_digest == a.image_digest
        and live[b.kernel_id].image_digest == b.image_digest == versions["extra"]
    )
    env = await svc.kernel_environment("ann", b.kernel_id)
    assert env == {
        "image": EXTRA,
        "digest": versions["extra"],
        "display_name": "Python 3.11 (extra)",
        "resources": b.resources.to_dict(),
        "language": "python",  # an image built FROM Berth's base: one kernel, its kernelspec by image
        "kernel": None,
        "kernelspec": image_kernel_name(EXTRA),
    }
    again = await svc.images.resolve_environment(env["image"], env["digest"])
    assert again["status"] == "available" and again["image"] == EXTRA
    with pytest.raises(NotFoundError):
        await svc.kernel_environment("bob", b.kernel_id)  # not bob's


async def test_retire_keeps_running_kernels_refuses_new_ones_and_gc_spares_what_is_used(svc, versions):
    client = docker.from_env()
    old_id = _build(
        client,
        f"FROM {versions['base']}\nUSER root\nRUN echo old > /etc/berth-old\nUSER 1000\n"
        + _label("3.10", "Python 3.10 (test)"),
        OLD,
    )
    running = await svc.start_kernel("ann", kernel_id=kid(), image=OLD, request=SMALL)
    with pytest.raises(ConflictError, match="is the default image"):
        await svc.images.retire_image("admin", (), CUR)
    await svc.images.retire_image("admin", (), OLD, note="end of life")
    with pytest.raises(ImageRetiredError) as info:
        await svc.start_kernel("ann", kernel_id=kid(), image=OLD, request=SMALL)
    assert info.value.message == f"{OLD} is retired; use {CUR}"
    assert not [
        a for a in await svc.list_kernels("ann") if a.image == OLD and a.subject != running.kernel_id
    ]  # nothing reserved
    assert (await svc.kernel_state("ann", running.kernel_id)).running  # running ones keep going
    assert "old" in await run_code(running, "print(open('/etc/berth-old').read())")
    assert OLD not in [i.ref for i in await svc.images.catalog_view()]
    assert image_kernel_name(OLD) not in {p.name for p in plan(await svc.images.catalog_view(), [], svc.default_image)}

    kept = await svc.images.gc_images("admin", ())
    assert kept == [
        {
            "ref": OLD,
            "state": "retired",
            "id": old_id,
            "size": kept[0]["size"],
            "action": "kept",
            "reason": "1 running kernel(s) use it",
        }
    ]
    await svc.stop_kernel("ann", running.kernel_id)
    outsider = client.containers.create(
        old_id, ["true"], labels={"purpose": "berth-images-test"}
    )  # not a Berth container
    try:
        assert (await svc.images.gc_images("admin", ()))[0]["reason"].startswith("containers use it")
    finally:
        outsider.remove(force=True)
    assert (await svc.images.gc_images("admin", (), dry_run=True))[0]["action"] == "would-remove"
    assert client.images.get(OLD).id == old_id  # a dry run removes nothing
    removed = await svc.images.gc_images("admin", ())
    assert removed[0]["action"] == "removed"
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(old_id)
    # The catalog remembers: notebooks still learn it is retired, starts still name the nearest.
    entry = (await svc.images.catalog_view()).get(OLD)
    assert entry.state == "retired" and not entry.present and entry.digest == old_id
    answer = await svc.images.resolve_environment(OLD, old_id)
    assert answer["status"] == "retired" and answer["nearest"]["image"] == CUR
    with pytest.raises(ImageRetiredError, match=f"use {CUR}"):
        await svc.start_kernel("ann", kernel_id=kid(), image=OLD)
    with pytest.raises(NotFoundError, match="no longer on this host"):
        await svc.images.offer_image("admin", (), OLD)
    history = await svc.images.image_events("admin", (), OLD)
    assert [e["action"] for e in history] == ["remove", "retire"] and history[1]["by"] == "admin"
    assert history[1]["detail"]["note"] == "end of life"


async def test_default_hide_offer_and_pinned_alias(svc, versions):
    client = docker.from_env()
    await svc.images.set_default_image("admin", (), EXTRA)
    assert svc.default_image == EXTRA
    _, image, _ = await svc.resolve_request("ann")
    assert image == EXTRA  # kernels that name no image get the new default
    with pytest.raises(ConflictError, match="make another one the default"):
        await svc.images.hide_image("admin", (), EXTRA)
    await svc.images.set_default_image("admin", (), CUR)
    hidden = await svc.images.hide_image("admin", (), EXTRA)
    assert hidden["state"] == "hidden" and EXTRA not in [i.ref for i in await svc.images.catalog_view()]
    with pytest.raises(NotFoundError, match="not offered on this host"):
        await svc.start_kernel("ann", kernel_id=kid(), image=EXTRA)
    with pytest.raises(NotFoundError):
        await svc.images.set_default_image("admin", (), EXTRA)  # only an offered version can be the default
    assert (await svc.images.offer_image("admin", (), EXTRA))["state"] == "offered"

    pinned = await svc.images.alias_image("admin", (), LATEST, CUR)
    assert (
        pinned["alias_of"] == CUR
        and pinned["id"] == versions["base"]
        and client.images.get(LATEST).id == versions["base"]
    )
    client.images.get(versions["extra"]).tag(REPO, "latest")  # someone moves the tag by hand
    svc.images.engine_list_ttl = 0  # (the service would see it within a second anyway)
    view = await svc.images.catalog_view()
    assert view.get(LATEST).id == versions["base"] and client.images.get(LATEST).id == versions["base"]  # re-pinned
    assert catalog.find(view, LATEST).id == versions["base"]
    moved = await svc.images.alias_image("admin", (), LATEST, versions["extra"])  # re-pin by digest
    assert moved["id"] == versions["extra"] and client.images.get(LATEST).id == versions["extra"]
    with pytest.raises(ConflictError, match="is an image version, not an alias"):
        await svc.images.alias_image("admin", (), EXTRA, CUR)
    with pytest.raises(RequestError, match="offered_images patterns"):
        await svc.images.alias_image("admin", (), "berth/python:latest", CUR)  # never touches other namespaces
    await svc.images.unalias_image("admin", (), LATEST)
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(LATEST)
    assert LATEST not in (await svc.images.catalog_view()).entries
    actions = [e["action"] for e in await svc.images.image_events("admin", ())]
    assert actions[:4] == ["unalias", "alias", "alias", "offer"] and "default" in actions and "hide" in actions


async def test_build_from_dockerfile_and_requirements_streams_progress(svc, versions):
    built, lines = f"{REPO}:3.11-built", []
    with pytest.raises(RequestError, match="must name the base"):
        await svc.images.versions.build_image("admin", (), base=CUR, tag=built, dockerfile="FROM debian:12\nRUN true\n")
    with pytest.raises(NotFoundError, match="not offered"):
        await svc.images.versions.build_image(
            "admin", (), base=BASE, tag=built, dockerfile="RUN true\n"
        )  # outside this catalog
    out = await svc.images.versions.build_image(
        "admin",
        (),
        base=CUR,
        tag=built,
        progress=lines.append,
        dockerfile="USER root\nRUN echo built > /etc/berth-built\nUSER 1000\n",
    )
    assert any(line.strip().startswith("Step 1/") for line in lines) and any(
        "Successfully tagged" in line for line in lines
    )
    assert (
        out["state"] == "hidden" and out["labels"]["base"] == CUR and out["labels"]["base_digest"] == versions["base"]
    )
    assert (
        out["labels"]["build_source"] == "dockerfile"
        and out["version"] == "3.11-built"
        and out["labels"]["built_by"] == "admin"
    )
    with pytest.raises(NotFoundError, match="not offered"):
        await svc.start_kernel("ann", kernel_id=kid(), image=built)  # hidden until offered
    with pytest.raises(ConflictError, match="already exists"):
        await svc.images.versions.build_image("admin", (), base=CUR, tag=built, dockerfile="RUN true\n")

    # requirements.txt, in the background as the REST API runs it; pip finds it installed, so no network is needed.
    op = await svc.images.versions.start_image_operation(
        "admin", (), "build", {"base": CUR, "tag": f"{REPO}:3.11-req", "requirements": "traitlets\n", "offer": True}
    )
    await asyncio.wait_for(op.task, 120)
    assert op.state == "succeeded", op.to_json()
    assert op.result["state"] == "offered" and any(f.startswith("traitlets ") for f in op.result["frameworks"])
    assert any("pip install" in line for line in op.lines()[1]) and op.to_json(since=op.to_json()["next"])["log"] == []

    for ref in (built, f"{REPO}:3.11-req"):
        await svc.images.retire_image("admin", (), ref)
    assert {r["ref"]: r["action"] for r in await svc.images.gc_images("admin", ())} == {
        built: "removed",
        f"{REPO}:3.11-req": "removed",
    }


async def test_a_non_admin_is_refused_everything_and_nothing_changes(svc, versions):
    before = await asyncio.to_thread(catalog_state.load, svc.ledger)
    tags = sorted(t for i in docker.from_env().images.list(name=REPO) for t in i.tags)
    calls = [
        svc.images.offer_image("eve", ("students",), EXTRA),
        svc.images.hide_image("eve", (), EXTRA),
        svc.images.retire_image("eve", (), EXTRA),
        svc.images.set_default_image("eve", (), EXTRA),
        svc.images.alias_image("eve", (), LATEST, CUR),
        svc.images.unalias_image("eve", (), LATEST),
        svc.images.versions.pull_image("eve", (), f"127.0.0.1:5000/{EXTRA}"),
        svc.images.versions.push_image("eve", (), EXTRA, f"127.0.0.1:5000/{EXTRA}"),
        svc.images.versions.build_image("eve", (), base=CUR, tag=f"{REPO}:evil", dockerfile="RUN true"),
        svc.images.gc_images("eve", ()),
        svc.images.image_events("eve", ()),
        svc.images.image_catalog("eve", (), include_all=True),
        svc.images.versions.start_image_operation("eve", (), "pull", {"source": f"127.0.0.1:5000/{EXTRA}"}),
    ]
    for call in calls:
        with pytest.raises(PolicyError) as info:
            await call
        assert info.value.status == 403 and "needs an image admin" in info.value.message
    with pytest.raises(PolicyError):
        svc.images.versions.image_operations("eve", ())
    assert await asyncio.to_thread(catalog_state.load, svc.ledger) == before
    assert await svc.images.image_events("admin", ()) == []
    assert sorted(t for i in docker.from_env().images.list(name=REPO) for t in i.tags) == tags
    # Group membership makes an admin.
    svc.images.admin_groups = {"staff"}
    assert (await svc.images.hide_image("carol", ("staff",), EXTRA))["state"] == "hidden"


# -- a real registry ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry():
    """The local registry's address: $BERTH_TEST_REGISTRY (scripts/test.sh), else scripts/registry-up.sh brings it up."""
    if os.environ.get("BERTH_TEST_REGISTRY"):
        return os.environ["BERTH_TEST_REGISTRY"]
    done = subprocess.run(["sh", str(ROOT / "scripts" / "registry-up.sh")], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"scripts/registry-up.sh failed: {done.stderr.strip()}")
        pytest.skip(f"no local registry: {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout.strip().splitlines()[-1]


async def test_pull_and_push_through_a_local_registry(svc, versions, registry):
    client = docker.from_env()
    uid = uuid.uuid4().hex[:8]
    local = f"{REPO}:3.11-pushme-{uid}"
    image_id = _build(
        client,
        f"FROM {versions['extra']}\nUSER root\nRUN echo {uid} > /etc/berth-pushed\nUSER 1000\n"
        + _label(f"3.11-pushme-{uid}", "Python 3.11 (pushed)"),
        local,
    )
    remote = f"{registry}/{local}"
    lines: list[str] = []
    pushed = await svc.images.versions.push_image("admin", (), local, remote, progress=lines.append)
    assert pushed["digest"].startswith("sha256:") and any("pushing" in line for line in lines)
    client.images.remove(remote)
    client.images.remove(local)  # the image (and its own layer) is gone from the engine
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(image_id)

    svc.images.versions.pull_registries = [registry]
    lines.clear()
    out = await svc.images.versions.pull_image("admin", (), remote, progress=lines.append)
    assert out["ref"] == local and out["id"] == image_id and out["state"] == "hidden" and out["source"] == remote
    assert out["digest"] == f"{registry}/{REPO}@{pushed['digest']}" and lines[0] == f"pulling {remote}"
    assert out["display_name"] == "Python 3.11 (pushed)"
    again = await svc.images.versions.pull_image("admin", (), remote, offer=True)  # idempotent; now offered
    assert again["id"] == image_id and again["state"] == "offered"
    launch = await svc.start_kernel("ann", kernel_id=kid(), image=local, request=SMALL)
    assert launch.image_digest == out["digest"] and uid in await run_code(
        launch, "print(open('/etc/berth-pushed').read())"
    )
    env = await svc.kernel_environment("ann", launch.kernel_id)
    assert (await svc.images.resolve_environment(env["image"], env["digest"]))["status"] == "available"

    with pytest.raises(NotFoundError, match="not in the registry"):
        await svc.images.versions.pull_image("admin", (), f"{registry}/{REPO}:no-such-tag-{uid}")
    plain = f"{registry}/{NAMESPACE}/notkernel:{uid}"
    _build(client, f"FROM {versions['base']}\nLABEL io.jupyter.berth.kind=base\n", plain)
    client.images.push(f"{registry}/{NAMESPACE}/notkernel", tag=uid)
    client.images.remove(plain)
    with pytest.raises(RequestError, match="not a Berth kernel image"):
        await svc.images.versions.pull_image("admin", (), plain, tag=f"{REPO}:notkernel-{uid}")
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(plain)  # a refused pull leaves nothing behind
    with pytest.raises(PolicyError, match="pulling from docker.io is not allowed"):
        await svc.images.versions.pull_image("admin", (), "library/python:3.12")  # never reaches the network

    await svc.stop_kernel("ann", launch.kernel_id, now=True)
    await svc.images.retire_image("admin", (), local)
    assert [(r["ref"], r["action"]) for r in await svc.images.gc_images("admin", ())] == [
        (local, "removed")
    ]  # both tags
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(image_id)


# -- the REST API (jupyter_server with the berth extension) ------------------------------------------


def test_cli_kernelspecs_sync_on_a_fresh_install(tmp_path, versions):
    """`berth kernelspecs sync` on a new standalone install (no ledger yet, empty Jupyter data dir) opens
    the ledger itself and writes one kernelspec per offered version, the default marked as such."""
    jupyter_data = tmp_path / "jupyter"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "jupyter_berth.cli.app",
            "kernelspecs",
            "sync",
            f"--BerthService.offered_images={OFFERED}",
            f"--BerthService.default_image={CUR}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "BERTH_DATA_DIR": str(tmp_path / "berth"), "JUPYTER_DATA_DIR": str(jupyter_data)},
    )
    assert done.returncode == 0, done.stderr
    kernels = jupyter_data / "kernels"
    written = {name: json.loads((kernels / name / "kernel.json").read_text()) for name in os.listdir(kernels)}
    assert {image_kernel_name(CUR), image_kernel_name(EXTRA)} <= set(written), done.stdout
    assert f"{len(written)} written, 0 unchanged, 0 removed" in done.stdout
    assert written[image_kernel_name(CUR)]["metadata"]["jupyter_berth"].get("default") is True


def test_cli_retire_and_check(tmp_path, versions):
    """`berth images …` acts on the same ledger and engine as the service, as the host's operator."""

    def berth(*args):
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "jupyter_berth.cli.app",
                "images",
                *args,
                f"--data-dir={tmp_path}",
                f"--BerthService.offered_images={OFFERED}",
                f"--BerthService.default_image={CUR}",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "BERTH_USER": "operator"},
        )

    done = berth("retire", EXTRA, f"--replacement={CUR}", "--note=superseded")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{EXTRA}: retired, replaced by {CUR} ({versions['extra'][:19]})"
    check = berth("check", EXTRA, versions["extra"])
    answer = json.loads(check.stdout)
    assert answer["status"] == "retired" and answer["nearest"]["image"] == CUR
