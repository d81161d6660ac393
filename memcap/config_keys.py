"""Renamed workflow config keys: the old spellings keep working for one release.

The Snakefile calls ``migrate(config)`` on the config as read, before the schema validates it:
every old key found is moved to its new place, and a message naming both keys comes back for
the workflow to log as a warning. A config that sets an old key and its new one is an error
(ConfigKeyError), since the two could disagree. Standard library only: the Snakefile imports
this at planning time, where memcap's dependencies (torch) may be missing (--use-conda).

    from memcap.config_keys import migrate
    config = {"compress": {"threads": 4}}
    migrate(config)  # ["Config key 'compress.threads' is deprecated: use 'resources.threads' instead ..."]
    config           # {"compress": {}, "resources": {"threads": 4}}

The words these names settle on are in docs/method.md section 9 (glossary).
"""

from __future__ import annotations

# What every job that runs a model gets (compress, multivector, geometry, baselines, precision):
# the `resources` block; `compress` keeps what only compression uses (mode, search, cast_weights).
RESOURCE_KEYS = (
    "batch_size",
    "device",
    "gpu",
    "threads",
    "mem_mb",
    "mem_mb_per_billion",
    "runtime",
    "runtime_per_billion",
)

# (old key, new key), dotted; "*" stands for any key at that level (a model's name) and names
# the same key in both. Kept for one release after the rename, then removed with the old keys.
RENAMED: list[tuple[str, str]] = [
    *((f"compress.{key}", f"resources.{key}") for key in RESOURCE_KEYS),
    # K, the number of [mem] vectors, as in the paper and geometry.K
    ("multivector.*.vectors", "multivector.*.K"),
    # points on an interpolation line, not optimiser steps (those are geometry.max_steps)
    ("geometry.steps", "geometry.points"),
]


class ConfigKeyError(ValueError):
    """A config sets a renamed key in both spellings, or its new place cannot take it."""


def _found(node, parts: list[str], prefix: tuple = ()):
    """Concrete key paths (tuples) matching `parts` ("*": any key) that the config holds."""
    if not isinstance(node, dict):
        return
    head, rest = parts[0], parts[1:]
    keys = list(node) if head == "*" else [head] if head in node else []
    for key in keys:
        if rest:
            yield from _found(node[key], rest, (*prefix, key))
        else:
            yield (*prefix, key)


def _dotted(path) -> str:
    return ".".join(map(str, path))


def migrate(config: dict) -> list[str]:
    """Move every old key of RENAMED in `config` (changed in place) to its new key.

    Returns one deprecation message per key moved, naming the old and the new key. Raises
    ConfigKeyError, naming the key, where both are set or the new key's block is not a mapping.
    """
    messages = []
    for old, new in RENAMED:
        old_parts, new_parts = old.split("."), new.split(".")
        for path in list(_found(config, old_parts)):
            stars = iter(key for key, part in zip(path, old_parts, strict=True) if part == "*")
            target = [next(stars) if part == "*" else part for part in new_parts]
            parent = config
            for depth, key in enumerate(target[:-1]):
                if parent.get(key) is None:  # absent, or an empty block (`resources:`)
                    parent[key] = {}
                parent = parent[key]
                if not isinstance(parent, dict):
                    raise ConfigKeyError(
                        f"Invalid config key {_dotted(target[: depth + 1])!r}: it must be a mapping "
                        f"to take {_dotted(target)!r}, the new name of {_dotted(path)!r}"
                    )
            if target[-1] in parent:
                raise ConfigKeyError(
                    f"Invalid config key {_dotted(path)!r}: it is the deprecated name of "
                    f"{_dotted(target)!r}, which is set too; allowed: only {_dotted(target)!r}"
                )
            source = config
            for key in path[:-1]:
                source = source[key]
            parent[target[-1]] = source.pop(path[-1])
            messages.append(
                f"Config key {_dotted(path)!r} is deprecated: use {_dotted(target)!r} instead "
                f"(the old name works in this release only)"
            )
    return messages
