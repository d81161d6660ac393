"""Files written whole or not at all, JSON lines, data files inside installed packages, and
the named paths of a function that writes several files.

    from memcap.io import atomic_open, atomic_path, atomic_write_text, read_jsonl, write_jsonl
    atomic_write_text("out/job.json", "{}\\n")
    with atomic_open("words.txt", "w", encoding="utf-8") as f:   # an open file, renamed at the end
        f.writelines(words)
    with atomic_path("part.safetensors") as tmp:                  # a path, for writers that want one
        save_file(tensors, tmp)
    write_jsonl(rows, "texts.jsonl", ensure_ascii=False); rows = read_jsonl("texts.jsonl")
    package_file("gensim", "test/test_data/lee_background.cor")   # found without importing gensim
    named_paths("out", ["a", "b"], ["csv", "tex"])   # {"a_csv": out/a.csv, "a_tex": out/a.tex, ...}
    check_paths(paths, ["rows", "summary"], "write_outputs")   # Paths; ValueError on a wrong key

Atomic: the data goes to a hidden temp file (`.<name>.<random><suffix>`) in the target's own
folder, so the rename cannot cross file systems, and replaces the target only once complete.
An error or a signal that Python sees (KeyboardInterrupt, SystemExit) removes the temp file
and keeps the old target; a SIGKILL can only leave a temp file, never a half-written target.
The temp file comes from tempfile.mkstemp, so the target ends up with its permissions (0600).
"""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temp path beside `path` to write in any way; renamed to `path` when the block ends,
    removed when it raises. The parent folders are made if missing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_open(path: str | Path, mode: str = "w", suffix: str = ".tmp", **kwargs) -> Iterator[IO]:
    """`open(path, mode, **kwargs)` atomically (atomic_path): the file is flushed to disk
    before the rename, so a crash right after it cannot leave an empty target."""
    with atomic_path(path, suffix) as tmp, open(tmp, mode, **kwargs) as f:
        yield f
        f.flush()
        os.fsync(f.fileno())


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_jsonl(rows: Iterable[dict], path: str | Path, **dumps) -> Path:
    """One JSON object per line, atomically; `dumps` go to json.dumps (sort_keys, ensure_ascii)."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, **dumps) + "\n")
    return Path(path)


class JsonlError(ValueError):
    """A line of a JSON-lines file that is not one JSON object: names the file and the line."""

    def __init__(self, path: str | Path, line: int, why: str):
        self.path, self.line = Path(path), line
        super().__init__(f"{path}, line {line}: {why}")


def read_jsonl(path: str | Path) -> list[dict]:
    """The objects of a JSON-lines file (texts, records, parts), blank lines skipped.

    JsonlError (a ValueError) names the file and the line that is not UTF-8 or not one JSON
    object, e.g. a line cut short by a copy that stopped midway."""
    rows = []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise JsonlError(path, number, f"byte {err.start} of the line is not UTF-8") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise JsonlError(path, number, f"not valid JSON ({err.msg} at column {err.colno})") from None
            if not isinstance(row, dict):
                raise JsonlError(path, number, f"a JSON {type(row).__name__}, not an object")
            rows.append(row)
    return rows


def package_file(package: str, file: str | Path, missing: str | None = None) -> Path:
    """Path of a data file inside an installed package, found without importing it (importing
    e.g. gensim is slow and pulls scipy). FileNotFoundError when the package is not installed,
    with the message `missing` if given (who needs it, how to install it), or lacks the file."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(missing or f"package {package!r} is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / file
    if not path.is_file():
        raise FileNotFoundError(f"{file!r} not found in package {package!r} ({path})")
    return path


def named_paths(folder: str | Path, names: Iterable[str], formats: Iterable[str]) -> dict[str, Path]:
    """{"<name>_<format>": folder/<name>.<format>} for every name and format: the files of
    several outputs in one folder, keyed as the workflow's rules name their outputs."""
    return {f"{name}_{fmt}": Path(folder) / f"{name}.{fmt}" for name in names for fmt in formats}


def check_named_paths(
    paths: Mapping[str, str | Path], names: Iterable[str], formats: Iterable[str], what: str, complete: bool = True
) -> dict[str, Path]:
    """`paths` as Paths after checking its keys ("<name>_<format>", as named_paths makes them).

    ValueError naming the allowed keys when a key is unknown or, if `complete`, when any
    is missing (every name in every format). `what` names the caller in the message.
    """
    names, formats = list(names), list(formats)
    return check_paths(
        paths,
        named_paths("", names, formats),
        what,
        complete,
        f"'<name>_<format>' for the names {', '.join(names)} and the formats {', '.join(formats)}",
    )


def check_paths(
    paths: Mapping[str, str | Path], keys: Iterable[str], what: str, complete: bool = True, described: str = ""
) -> dict[str, Path]:
    """`paths` as Paths after checking its keys against `keys` (a rule's output names, e.g.
    ["rows", "table", "tex", "summary"]): check_named_paths for any list of names.

    ValueError naming the allowed keys when a key is unknown or, if `complete`, when any
    is missing. `what` names the caller in the message, `described` (optional) the keys.
    """
    allowed = list(keys)
    kind = described or "output names"
    if not isinstance(paths, Mapping):
        raise TypeError(
            f"{what}: takes a mapping of {kind} to a path, not {paths!r}; allowed keys: {', '.join(allowed)}"
        )
    unknown = [key for key in paths if key not in allowed]
    missing = [key for key in allowed if key not in paths] if complete else []
    if unknown or missing:
        problems = "; ".join(
            f"{label} key(s) {', '.join(map(repr, keys))}"
            for label, keys in (("unknown", unknown), ("missing", missing))
            if keys
        )
        need = "needs every one" if complete else "takes any"
        raise ValueError(f"{what}: {problems}; it {need} of {kind}: {', '.join(allowed)}")
    return {key: Path(path) for key, path in paths.items()}
