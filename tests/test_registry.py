"""The model registry is checked like the config (memcap.registry), at planning and when read."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from conftest import ROOT
from memcap.core.models import ModelSpec, load_registry
from memcap.registry import SCHEMA, RegistryError, read_registry
from memcap.stages import plan

GOOD = "tiny:\n  source: random\n  family: llama\n"


def write(tmp_path, text: str):
    path = tmp_path / "models.yaml"
    path.write_text(text)
    return path


def test_the_schema_names_exactly_the_model_spec_keys():
    schema = yaml.safe_load(SCHEMA.read_text())
    assert set(schema["properties"]) == {f.name for f in dataclasses.fields(ModelSpec)} - {"name"}
    assert set(read_registry(ROOT / "config/models.yaml")) == set(load_registry(ROOT / "config/models.yaml"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tiny:\n  source: random\n   family: llama\n", r"models.yaml: YAML syntax error at line 3"),
        ("tiny:\n  source: random\n  hiden_size: 8\n", r"model 'tiny' has unknown key\(s\) \['hiden_size'\]; allowed"),
        ("tiny:\n  source: random\n  hidden_size: big\n", r"model 'tiny', key 'hidden_size': 'big' is not of type"),
        ("tiny:\n  - source: random\n", r"model 'tiny' must be a mapping of keys \(source, ...\), got list"),
        ("tiny:\n", r"model 'tiny' must be a mapping of keys \(source, ...\), got null"),
        ("'ti{ny}':\n  source: random\n", r"model name 'ti\{ny\}' cannot be used"),
        ("'a$b':\n  source: random\n", r"model name 'a\$b' cannot be used"),
        ("'a\\b':\n  source: random\n", r"model name 'a\\\\b' cannot be used"),  # one backslash
        ("'..':\n  source: random\n", r"model name '\.\.' cannot be used"),
        (
            "x:\n  id: org/x\n  trust_remote_code: 'false'\n",
            r"key 'trust_remote_code': 'false' is not of type 'boolean'",
        ),
        ("x:\n  source: ggml\n", r"model 'x': source 'ggml' is not one of hf, gguf, random"),
    ],
)
def test_a_bad_registry_names_the_file_the_entry_and_the_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(RegistryError, match=message):
        read_registry(path)
    with pytest.raises(ValueError, match=message):  # the command line and the jobs read it the same way
        load_registry(path)
    with pytest.raises(plan.PlanError, match="Invalid model registry .*" + message):  # and so does planning
        plan.read_registry(path)


def test_a_good_registry_reads_as_written(tmp_path):
    assert read_registry(write(tmp_path, GOOD)) == {"tiny": {"source": "random", "family": "llama"}}
    assert read_registry(write(tmp_path, "")) == {}


def test_a_bad_registry_stops_the_workflow_at_planning(tmp_path):
    from conftest import plan as dry_run
    from conftest import write_config

    bad = write(tmp_path, "tiny-gpt-neox:\n  source: random\n  family: gpt_neox\n  trust_remote_code: 'false'\n")
    cfg = write_config("smoke", tmp_path / "bad.yaml")
    text = cfg.read_text().replace(str(ROOT / "config" / "models.yaml"), str(bad))
    cfg.write_text(text)
    with pytest.raises(AssertionError, match="Invalid model registry .*'trust_remote_code': 'false' is not of type"):
        dry_run(cfg, workdir=tmp_path)
