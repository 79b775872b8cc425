"""The gateway without HTTP: a workspace with no champion is not ready and says why."""

from __future__ import annotations

import shutil

import pytest

from kernel.profile import load_profile
from serving.config import load_serving_config
from serving.gateway import Gateway

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("small-built-features")]


def test_without_a_champion_the_service_is_not_ready_and_names_why(small_built_features, tmp_path):
    src, _ = small_built_features
    ws = tmp_path / "ws"
    shutil.copytree(src / "features", ws / "features")
    gw = Gateway(ws, load_profile("local"), load_serving_config(), watch=False)
    try:
        ok, why = gw.ready()
        assert not ok and "no credit-rating champion" in why
        assert gw.data_as_of is not None and gw.data_as_of.year == 2018      # the materialization is known
        assert gw.reload() == {}                                              # nothing to swap in yet
    finally:
        gw.close()
