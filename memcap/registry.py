"""The model registry file, read and checked before anything is loaded from it.

    from memcap.registry import read_registry
    entries = read_registry("config/models.yaml")   # {name: {key: value}}; RegistryError names
                                                    # the file, the entry and the key

Each entry is checked against memcap/models.schema.yaml (jsonschema: unknown keys, wrong
types, booleans that are strings such as trust_remote_code: "false"), and each name must be
usable as a wildcard, a file name and a matplotlib label. The workflow's planning
(memcap.stages.plan) and memcap.core.models.load_registry both read it here, so a bad
registry stops a run before any job and the command line says the same.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import yaml

SCHEMA = Path(__file__).with_name("models.schema.yaml")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")  # no {}, $, \, / or spaces; not "." or ".."


class RegistryError(ValueError):
    """A model registry that cannot be used; the message names the file, entry and key."""


def read_registry(path: str | Path) -> dict[str, dict]:
    """The registry's entries by name, every one checked (RegistryError otherwise)."""
    path = Path(path)
    try:
        entries = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise RegistryError(f"{path}: YAML syntax error{where}: {problem}") from None
    if entries is None:
        return {}
    if not isinstance(entries, dict):
        raise RegistryError(f"{path}: the registry must map model names to entries, got a {type(entries).__name__}")
    for name, entry in entries.items():
        check_entry(path, name, entry)
    return entries


def check_entry(path: Path, name, entry) -> None:
    """One entry: a usable name and keys the schema allows."""
    if not isinstance(name, str) or not NAME.fullmatch(name) or ".." in name:
        raise RegistryError(
            f"{path}: model name {name!r} cannot be used (it names files and wildcards); allowed: letters, "
            "digits and . _ + - , starting with a letter or digit, without '..'"
        )
    if not isinstance(entry, dict):
        kind = "null" if entry is None else type(entry).__name__
        raise RegistryError(f"{path}: model {name!r} must be a mapping of keys (source, ...), got {kind}")
    import jsonschema

    schema = _schema()
    err = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(entry))
    if err is None:
        return
    if err.validator == "additionalProperties":
        unknown = sorted(set(entry) - set(schema["properties"]))
        raise RegistryError(
            f"{path}: model {name!r} has unknown key(s) {unknown}; allowed: {sorted(schema['properties'])}"
        )
    key = ".".join(str(p) for p in err.absolute_path) or "(entry)"
    if err.validator == "enum":
        allowed = ", ".join(str(v) for v in err.validator_value if v is not None)
        raise RegistryError(f"{path}: model {name!r}: {key} {err.instance!r} is not one of {allowed}")
    allowed = err.schema.get("enum") or err.schema.get("type")
    raise RegistryError(f"{path}: model {name!r}, key {key!r}: {err.message}; allowed: {allowed}")


@functools.cache
def _schema() -> dict:
    """models.schema.yaml, read once per process (not once per entry)."""
    return yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))
