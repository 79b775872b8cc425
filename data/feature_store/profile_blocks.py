"""The blocks of the "one enterprise, one file" profile (configs/profile_blocks.yaml) as feature refs.

Both the offline profile and the bank-facing service assemble a firm's file from these blocks, so a
bank sees exactly what an analyst sees; globs are expanded against the registered views.
"""

from __future__ import annotations

import fnmatch
from functools import cache

from pydantic import RootModel

from kernel.config import configs_dir, load_yaml_model
from kernel.errors import ConfigError


class ProfileBlocks(RootModel[dict[str, dict[str, list[str]]]]):
    """block name -> {feature view -> [field or glob, ...]}"""


@cache
def load_profile_blocks() -> ProfileBlocks:
    return load_yaml_model(ProfileBlocks, configs_dir() / "profile_blocks.yaml")


def expand_blocks(view_fields: dict[str, list[str]], blocks: ProfileBlocks | None = None) -> dict[str, list[str]]:
    """block -> feature refs `view:field`, globs expanded against `view_fields` (view -> its field names).

    A view or a literal field that is not registered is a configuration error naming both.
    """
    blocks = blocks or load_profile_blocks()
    out: dict[str, list[str]] = {}
    for block, views in blocks.root.items():
        refs: list[str] = []
        for view, patterns in views.items():
            if view not in view_fields:
                raise ConfigError(f"profile_blocks.yaml: block {block!r} names view {view!r}, which is not registered")
            for pat in patterns:
                hits = fnmatch.filter(view_fields[view], pat)
                if not hits:
                    raise ConfigError(f"profile_blocks.yaml: block {block!r}: {view}:{pat} matches no field")
                refs += [f"{view}:{f}" for f in hits]
        out[block] = refs
    return out


def registered_view_fields(store) -> dict[str, list[str]]:
    """view name -> field names, from a Feast store's registry."""
    return {fv.name: [f.name for f in fv.features] for fv in store.list_feature_views()}
