"""Renamed config keys (memcap.config_keys): old names keep working for one release.

The workflow-level checks (a config with the old names plans the same jobs and prints the
warnings) are in tests/test_workflow.py.
"""

from __future__ import annotations

import copy
import subprocess
import sys

import jsonschema
import pytest
import yaml

from conftest import ROOT
from memcap.config_keys import RENAMED, RESOURCE_KEYS, ConfigKeyError, migrate

SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())


def old_spelling(config: dict) -> dict:
    """`config` with every renamed key under its old name (the inverse of migrate)."""
    old = copy.deepcopy(config)
    moved = old.pop("resources", {}) or {}
    old.setdefault("compress", {}).update(moved)
    for grid in (old.get("multivector") or {}).values():
        if "K" in grid:
            grid["vectors"] = grid.pop("K")
    if "points" in (old.get("geometry") or {}):
        old["geometry"]["steps"] = old["geometry"].pop("points")
    return old


@pytest.mark.parametrize("old, new", [
    *((("compress", key), ("resources", key)) for key in RESOURCE_KEYS),
    (("multivector", "pythia-160m", "vectors"), ("multivector", "pythia-160m", "K")),
    (("geometry", "steps"), ("geometry", "points")),
])  # fmt: skip
def test_each_old_key_still_works_and_warns_naming_the_new_one(old, new):
    config = {"compress": {"mode": "grid"}, "multivector": {"pythia-160m": {"dataset": "pg19"}}, "geometry": {}}
    node = config
    for key in old[:-1]:
        node = node.setdefault(key, {})
    node[old[-1]] = 7
    messages = migrate(config)
    assert len(messages) == 1
    dotted_old, dotted_new = ".".join(old), ".".join(new)
    assert f"{dotted_old!r} is deprecated: use {dotted_new!r}" in messages[0]
    node = config
    for key in new:
        node = node[key]
    assert node == 7
    node = config
    for key in old[:-1]:
        node = node[key]
    assert old[-1] not in node
    assert config["compress"]["mode"] == "grid"  # what stays under compress stays


def test_every_renamed_key_is_in_the_schema_and_the_old_one_is_not():
    def has(path):
        node = SCHEMA
        for key in path.split("."):
            node = node["additionalProperties"] if key == "*" else node.get("properties", {}).get(key)
            if node is None:
                return False
        return True

    for old, new in RENAMED:
        assert has(new), new
        assert not has(old), old  # moved, so an old name the migration missed is an error


@pytest.mark.parametrize("name", ["config", "demo", "smoke"])
def test_old_spelling_of_each_shipped_config_migrates_to_the_config_itself(name):
    config = yaml.safe_load((ROOT / "config" / f"{name}.yaml").read_text())
    old = old_spelling(config)
    # the schema still rejects unknown keys: the old names fail it until they are migrated
    with pytest.raises(jsonschema.ValidationError, match="were unexpected|was unexpected"):
        jsonschema.Draft202012Validator(SCHEMA).validate(old)
    messages = migrate(old)
    assert messages and all("is deprecated: use" in m for m in messages)
    old = {k: v for k, v in old.items() if v != {} or k in config}  # an emptied compress block
    assert old == config
    jsonschema.Draft202012Validator(SCHEMA).validate(old)
    assert migrate(old) == []  # the new names: nothing to do


@pytest.mark.parametrize("config, key", [
    ({"compress": {"threads": 2}, "resources": {"threads": 4}}, "'compress.threads'"),
    ({"multivector": {"m": {"vectors": [2], "K": [2]}}}, "'multivector.m.vectors'"),
    ({"geometry": {"steps": 5, "points": 5}}, "'geometry.steps'"),
])  # fmt: skip
def test_old_and_new_name_both_set_is_an_error_naming_both(config, key):
    with pytest.raises(ConfigKeyError) as err:
        migrate(config)
    assert str(err.value).startswith(f"Invalid config key {key}: it is the deprecated name of")
    assert "which is set too" in str(err.value)


def test_an_empty_or_missing_new_block_takes_the_old_keys():
    config = {"compress": {"threads": 3, "mode": "search"}, "resources": None}
    migrate(config)
    assert config == {"compress": {"mode": "search"}, "resources": {"threads": 3}}
    with pytest.raises(ConfigKeyError, match="'resources': it must be a mapping"):
        migrate({"compress": {"gpu": 1}, "resources": 5})


def test_nothing_else_changes():
    config = {
        "compress": {"mode": "search", "search": {"fails": 2}, "cast_weights": True},
        "multivector": {"m": None},
        "geometry": {"K": 4, "max_steps": 100},
        "optim": {"max_steps": 3},
    }
    before = copy.deepcopy(config)
    assert migrate(config) == [] and config == before


def test_imports_only_the_standard_library():
    """The Snakefile imports it at planning time, maybe outside memcap's environment."""
    code = "import sys, memcap.config_keys; print(sorted({'torch', 'yaml', 'pandas'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
