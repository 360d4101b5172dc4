"""The service's area managers: composed, configured in their own sections, the old names still read.

Pure: no engine and no ledger (the managers are built when the service is; nothing is started).
"""

from __future__ import annotations

import pytest
from traitlets.config import Application, Config

from jupyter_berth.area import MOVED_SETTINGS, AreaManager
from jupyter_berth.environments.manager import EnvironmentManager
from jupyter_berth.folders.manager import FolderManager
from jupyter_berth.gpu.manager import GpuManager
from jupyter_berth.images.manager import ImageCatalog
from jupyter_berth.images.versions import ImageVersions
from jupyter_berth.service import BerthService
from jupyter_berth.usage.manager import UsageTracker


def test_managers_are_composed_configurables_with_their_dependencies_linked():
    service = BerthService(config=Config({"BerthService": {"data_dir": "/srv/berth"}}))
    kinds = (ImageCatalog, FolderManager, UsageTracker, GpuManager)
    for manager, kind in zip((service.images, service.folders, service.usage, service.gpus), kinds):
        assert isinstance(manager, kind) and manager.parent is service and manager.ledger is None
    assert isinstance(service.images.versions, ImageVersions) and service.images.versions.catalog is service.images
    assert service.folders.data_dir == service.gpus.data_dir == "/srv/berth"
    service.data_dir = "/srv/other"  # followed, one way
    assert service.folders.data_dir == "/srv/other"
    service.default_image = "berth/python:3.12"  # followed both ways: the catalog sets the admin's default
    assert service.images.default_image == "berth/python:3.12"
    service.images.default_image = "berth/python:3.10"
    assert service.default_image == "berth/python:3.10"


def test_the_environments_manager_is_composed_like_the_others():
    service = BerthService(config=Config({"BerthService": {"data_dir": "/srv/berth", "site_id": "s1"}}))
    environments = service.environments
    assert isinstance(environments, EnvironmentManager) and isinstance(environments, AreaManager)
    assert environments.parent is service and environments.ledger is None
    assert service.images.environments is environments  # the catalog lists and inspects foreign images through it
    assert environments.engine_call == service.images.engine_call  # engine calls go through the catalog's runtime
    assert environments.site_id == "s1" and environments.store.directory == "/srv/berth/environments"
    service.data_dir, service.site_id = "/srv/other", "s2"  # followed, one way
    assert environments.store.directory == "/srv/other/environments" and environments.site_id == "s2"


def test_the_usage_tracker_runs_the_fair_share_rules_after_each_round_and_adds_the_budgets_to_its_metrics():
    service = BerthService()
    assert service.fair.service is service and service.jobs.service is service
    assert service.usage.after_round == service.fair.apply_usage_rules
    assert service.usage.extra_metrics == service.fair.budget_metrics
    assert UsageTracker().after_round is None and UsageTracker().extra_metrics is None  # alone: sampling only


def test_each_manager_reads_its_own_section():
    config = Config(
        {
            "ImageCatalog": {"admin_users": {"ada"}},
            "ImageVersions": {"build_network": False},
            "FolderManager": {"folder_usage_ttl": 5.0},
            "UsageTracker": {"sample_interval": 0.0},
            "GpuManager": {"devices": [{"uuid": "GPU-declared-x", "name": "declared", "memory": "8G"}]},
            "EnvironmentManager": {"smoke_seconds": 7},
        }
    )
    service = BerthService(config=config)
    assert service.images.admin_users == {"ada"} and service.images.versions.build_network is False
    assert service.folders.folder_usage_ttl == 5.0 and service.usage.sample_interval == 0.0
    assert service.gpus.devices[0]["uuid"] == "GPU-declared-x"
    assert service.environments.smoke_seconds == 7


@pytest.mark.parametrize("old", sorted(MOVED_SETTINGS))
def test_every_old_name_is_passed_on_with_a_warning_naming_the_new_setting(old):
    path, cls, new = MOVED_SETTINGS[old]
    probe = BerthService()
    manager = probe
    for part in path.split("."):
        manager = getattr(manager, part)
    value = getattr(manager, new)  # its default: valid by construction
    with pytest.warns(DeprecationWarning, match=rf"c\.BerthService\.{old} .* set c\.{cls}\.{new} instead"):
        service = BerthService(config=Config({"BerthService": {old: value}}))
    got = service
    for part in path.split("."):
        got = getattr(got, part)
    assert getattr(got, new) == value


def test_the_new_setting_wins_and_old_names_work_from_the_command_line_and_as_attributes():
    both = Config({"BerthService": {"admin_users": {"old"}}, "ImageCatalog": {"admin_users": {"new"}}})
    assert BerthService(config=both).images.admin_users == {"new"}

    class App(Application):
        classes = [BerthService]

    app = App()
    app.initialize(["--BerthService.gpu_quantum=0.25", "--BerthService.folder_quota={'max_bytes': '3G'}"])
    with pytest.warns(DeprecationWarning):
        service = BerthService(parent=app)
    assert service.gpus.gpu_quantum == 0.25 and service.folders.folder_quota == {"max_bytes": "3G"}

    with pytest.warns(DeprecationWarning, match="c.FolderManager.folder_admins"):
        service.folder_admins = {"class1": ["@teachers"]}
    assert service.folders.folder_admins == {"class1": ["@teachers"]}
    with pytest.warns(DeprecationWarning, match="c.UsageTracker.sample_interval"):
        assert service.sample_interval == service.usage.sample_interval
