"""Command line: compress a text into [mem] vectors, decode them, run a compress job, build a prior.

    memcap compress "The quick brown fox jumps over the lazy dog." --model smollm2-135m -o fox.safetensors
    memcap decode fox.safetensors
    memcap job --model tiny-llama --texts texts.jsonl --out records.jsonl --lengths 8 16
    memcap prior records.jsonl --length 8 --out tiny.prior.safetensors

`memcap <command> --help` explains every option. Model names come from the registry shipped
with the package (memcap/models.yaml, the repository's config/models.yaml) unless --models-file
gives another. Errors print one line and exit with status 2; Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

from memcap.core.engine import PRESETS, PROTOCOLS, SCHEDULES, OptimConfig
from memcap.core.parametrisation import BASES, PARAMETRISATIONS
from memcap.records import MODES

REGISTRY_HELP = (
    "model registry (YAML) to read INSTEAD of the one shipped with memcap (the repository's "
    "config/models.yaml); to add a model, copy that file and add its entry"
)

OPTIM_OPTIONS = [  # flag, type, OptimConfig key, help
    ("--lr", float, "lr", "AdamW learning rate"),
    ("--fresh-lr", float, "fresh_lr", "learning rate from a random init; warm starts keep the other (None: the same)"),
    ("--beta1", float, "beta1", "AdamW beta1"),
    ("--beta2", float, "beta2", "AdamW beta2"),
    ("--weight-decay", float, "weight_decay", "AdamW weight decay"),
    ("--eps", float, "eps", "AdamW eps"),
    (
        "--max-steps",
        int,
        "max_steps",
        "most optimiser steps per text; without --fresh-max-steps, from a random init too",
    ),
    (
        "--fresh-max-steps",
        int,
        "fresh_max_steps",
        "most steps from a random init; warm starts keep the other (None: the same)",
    ),
    (
        "--patience",
        int,
        "patience",
        "stop after this many steps without a new best accuracy; without --fresh-patience, from a random init too",
    ),
    (
        "--fresh-patience",
        int,
        "fresh_patience",
        "patience from a random init; warm starts keep the other (None: the same)",
    ),
    ("--schedule", str, "schedule", f"learning-rate schedule: {' or '.join(SCHEDULES)}"),
    ("--warmup", int, "warmup", "steps of linear learning-rate warm-up"),
    ("--init-scale", float, "init_scale", "scale of the random init (times std(E))"),
    ("--temperature", float, "temperature", "softmax temperature of the training loss"),
    ("--margin", float, "margin", "logit margin the right token must win by"),
    (
        "--parametrisation",
        str,
        "parametrisation",
        f"{' or '.join(PARAMETRISATIONS)}: train the vectors themselves, or their coefficients in a fixed "
        "basis of rank r",
    ),
    ("--rank", int, "rank", "rank r of the low_rank basis (1 to the model's width d)"),
    (
        "--basis",
        str,
        "basis",
        f"low_rank basis: {' or '.join(BASES)} (the input embeddings' top principal directions, "
        "or a fixed random orthonormal one)",
    ),
]


def _optim_args(parser: argparse.ArgumentParser, preset: str) -> None:
    paper = OptimConfig()
    group = parser.add_argument_group(
        "optimiser",
        f"--preset picks a set of values (default {preset}); each option below overrides one "
        "of them (the paper's value in brackets; memcap.core.engine.PRESETS lists the presets)",
    )
    group.add_argument(
        "--preset",
        choices=list(PRESETS),
        default=preset,
        help="paper: the paper's optimiser; fast: memcap's, for quick answers; max: the method study's, for the "
        "highest capacity (config/README.md) (default %(default)s)",
    )
    for flag, kind, key, text in OPTIM_OPTIONS:
        group.add_argument(flag, type=kind, dest=key, default=None, help=f"{text} [{getattr(paper, key)}]")


# a flag given without its fresh_ twin sets both: a fresh start would otherwise keep the
# preset's own value (fast's 300 steps), not the budget the user asked for
FRESH_TWINS = {"max_steps": "fresh_max_steps", "patience": "fresh_patience"}


def _optim(args) -> OptimConfig:
    """The OptimConfig of the optimiser flags (only the command line's: a config's optim
    block keeps its preset's fresh_ values). A fresh_ key stays None (= the same) where the
    preset has no value of its own, so the recorded settings do not change."""
    values = {"preset": args.preset, **{key: getattr(args, key) for _, _, key, _ in OPTIM_OPTIONS}}
    preset = OptimConfig.from_dict({"preset": args.preset})
    for key, fresh in FRESH_TWINS.items():
        if values[key] is not None and values[fresh] is None and getattr(preset, fresh) is not None:
            values[fresh] = values[key]
    return OptimConfig.from_dict(values)


def search_args(
    parser: argparse.ArgumentParser, title: str = "capacity search (--mode search", defaults: dict | None = None
) -> None:
    """One flag per memcap.core.search.SearchConfig field, so a new search setting needs no edit
    here. `defaults` (e.g. memcap.core.search.CLAIMED["search"]) replaces SearchConfig's where the
    caller starts from other values: a bool gets --<name> and --no-<name>, so a command written
    against one set of defaults still reads the same under another. Unset flags keep the defaults."""
    import dataclasses

    from memcap.core.search import SearchConfig

    defaults = defaults or {}
    group = parser.add_argument_group(f"{title}; memcap.core.search.SearchConfig)")
    for f in dataclasses.fields(SearchConfig):
        default = defaults.get(f.name, f.default)
        flag, text = f.name.replace("_", "-"), f"{f.metadata['help']} (default {default})"
        if f.type in ("bool", bool):
            action = argparse.BooleanOptionalAction
            group.add_argument(f"--{flag}", dest=f"search_{f.name}", action=action, default=None, help=text)
        else:
            # annotations are strings here (from __future__ import annotations): "int | None" -> int
            kind = {"int": int, "float": float}.get(str(f.type).split(" |")[0], str)
            if str(f.type).endswith("| None"):  # "none" sets it off, over a value a caller's defaults give
                kind, text = _or_none(kind), f"{text}; none: off"
            group.add_argument(f"--{flag}", dest=f"search_{f.name}", type=kind, default=None, help=text)


OFF = "none"  # a search flag's value that sets an optional setting to None (search_args)


def _or_none(kind):
    def parse(value: str):
        return OFF if value.lower() == OFF else kind(value)

    parse.__name__ = kind.__name__  # argparse names the type in its errors
    return parse


def search_flags(args) -> dict:
    """The search_args() flags given, by SearchConfig field; one given as "none" maps to None,
    which SearchConfig.from_dict reads as the field's default (off), over a caller's own value."""
    prefix = "search_"
    given = {k[len(prefix) :]: v for k, v in vars(args).items() if k.startswith(prefix) and v is not None}
    return {k: None if v == OFF else v for k, v in given.items()}


def search_config(args):
    """The SearchConfig of parsed search_args() flags."""
    from memcap.core.search import SearchConfig

    return SearchConfig.from_dict(search_flags(args))


def _model_args(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument(
        "--model",
        "-m",
        required=required,
        help="a name from the model registry (memcap's own, or --models-file), a Hugging Face id (org/name), "
        "or a local model directory",
    )
    parser.add_argument("--models-file", type=Path, help=REGISTRY_HELP)
    parser.add_argument(
        "--device",
        default="auto",
        help="auto (CUDA if present, else CPU), cpu, cuda, cuda:1, ... (default %(default)s)",
    )


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {value!r}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="memcap", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "compress",
        help="compress one text into K vectors (a safetensors file)",
        description="Optimise K [mem] vectors until the frozen model reproduces the text.",
    )
    p.add_argument("text", nargs="?", help="the text; omit it (or give -) to read --file or standard input")
    p.add_argument("--file", "-f", type=Path, help="read the text from this file")
    _model_args(p)
    p.add_argument(
        "--vectors",
        "-k",
        type=_vectors_arg,
        default="auto",
        help="number K of [mem] vectors, or auto: K = 1, 2, 4, ... until greedy decoding "
        "reproduces the text (default %(default)s)",
    )
    p.add_argument(
        "--max-vectors", type=_positive_int, default=16, help="with -k auto, the largest K tried (default %(default)s)"
    )
    p.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="strict",
        help="strict: every token scored, decodable from the vectors alone; "
        "paper: the first token is not scored (the paper's setting) (default %(default)s)",
    )
    p.add_argument("--max-tokens", type=_positive_int, help="keep only the first this many (>= 1) tokens of the text")
    p.add_argument("--seed", type=int, default=0, help="seed of the vectors' random init (default %(default)s)")
    p.add_argument(
        "--out",
        "-o",
        type=Path,
        default=Path("vectors.safetensors"),
        help="vectors file to write (default %(default)s)",
    )
    p.add_argument(
        "--prior",
        type=Path,
        help="a prior file (`memcap prior`) where the fresh attempts of its K begin instead of the random init",
    )
    search_args(p, title="how each K goes through the prefixes, 8, 16, 32, ... tokens, then the text")
    _optim_args(p, preset="fast")

    p = sub.add_parser(
        "decode",
        help="print the text a vectors file decodes to",
        description="Greedy decoding from the [mem] vectors alone (paper protocol: plus the stored first token), "
        "with the model that made them (the file records it). Exit status 1, with a WARNING, when the decoded "
        "tokens are not those the vectors reproduced when they were made. `memcap -v decode` first logs what the "
        "file records: the model, K, the tokens, the protocol and the method (the optimiser preset, and the "
        "parametrisation where it is not full).",
    )
    p.add_argument("vectors_file", type=Path, help="a file written by `memcap compress`")
    _model_args(p, required=False)
    p.set_defaults(model=None)
    p.add_argument(
        "--force",
        action="store_true",
        help="decode with --model even though the file records another model "
        "(the text is then meaningless unless the weights are the same)",
    )

    p = sub.add_parser(
        "job",
        help="run a compress job over a texts file (what the workflow calls)",
        description="Compress every (K, L, text) of a grid; resumable; writes one record per sample (docs/records.md).",
    )
    _model_args(p)
    p.add_argument("--texts", required=True, type=Path, help="texts JSONL (docs/records.md)")
    p.add_argument("--out", required=True, type=Path, help="records JSONL to write; parts are kept in <out>.parts/")
    p.add_argument(
        "--lengths", type=int, nargs="+", help="lengths L in tokens; omit to use each text's own `length` (random text)"
    )
    p.add_argument(
        "--vectors", type=int, nargs="+", default=[1], help="numbers K of [mem] vectors (default %(default)s)"
    )
    p.add_argument("--protocol", choices=PROTOCOLS, default="paper", help="default %(default)s")
    p.add_argument("--batch-size", type=int, default=16, help="texts optimised together (default %(default)s)")
    p.add_argument("--max-samples", type=int, help="use only the first this many texts")
    p.add_argument("--dataset", help="dataset name in the records (default: the texts file's stem)")
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    p.add_argument(
        "--mode",
        choices=MODES,
        default="grid",
        help="grid: every (K, L, text); search: each text's capacity by warm-started growth "
        "through --lengths, then bisection (default %(default)s)",
    )
    p.add_argument(
        "--cast-weights",
        action="store_true",
        help="keep the frozen linear weights in the registry's autocast dtype (CUDA) instead "
        "of casting them every forward; recorded in the job's settings",
    )
    p.add_argument(
        "--prior",
        type=Path,
        help="with --mode search and one K: a prior file (`memcap prior`) where fresh starts begin instead of "
        "the random init",
    )
    search_args(p)
    _optim_args(p, preset="paper")

    p = sub.add_parser(
        "prior",
        help="build a prior for a search's fresh starts from saved searches",
        description="The mean of the lossless vectors that saved searches found at one length (memcap.core.prior): "
        "a start for the fresh attempts of a search on OTHER texts (`memcap job --prior`, a config's "
        "models.<name>.prior). The file records the model and the texts it was built from; a run on one of "
        "those texts refuses it.",
    )
    p.add_argument(
        "sources",
        nargs="+",
        type=Path,
        help="compress records (results/<run>/compress/<model>/<dataset>.jsonl) or benchmarks/fast.py progress "
        "files (<folder>/<name>.json.progress.jsonl)",
    )
    p.add_argument("--length", type=_positive_int, default=8, help="length whose vectors to average (default 8)")
    p.add_argument("--vectors", "-k", type=_positive_int, default=1, help="number K of vectors (default 1)")
    p.add_argument("--out", "-o", type=Path, required=True, help="prior file to write (safetensors)")
    p.add_argument("--models-file", type=Path, help=REGISTRY_HELP)
    return parser


def read_text(args) -> str:
    if args.text not in (None, "-"):
        text = args.text
    elif args.file is not None:
        text = args.file.read_text(encoding="utf-8")
    elif args.text == "-" or not sys.stdin.isatty():
        text = sys.stdin.read()
    else:
        raise ValueError("no text: give it as an argument, with --file, or on standard input")
    if not text.strip():
        raise ValueError("the text is empty; give at least one word")
    return text


def _vectors_arg(value: str):
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"K must be a whole number or 'auto', got {value!r}") from None


def _compress_input(args, optim):
    """The model and the text's tokens for `memcap compress`, checked against K and the context."""
    from memcap.core.engine import first_scored
    from memcap.core.models import load_model, resolve_model

    text = read_text(args)
    if args.vectors != "auto" and args.vectors < 1:
        raise ValueError(f"--vectors (K) must be >= 1 or auto, got {args.vectors}")
    spec = resolve_model(args.model, _registry(args.models_file))
    lm = load_model(spec, args.device)
    ids = lm.tokenize(text)
    if args.max_tokens:
        ids = ids[: args.max_tokens]
    first = first_scored(args.protocol)
    if len(ids) <= first:
        raise ValueError(f"protocol {args.protocol!r} needs at least {first + 1} tokens; the text has {len(ids)}")
    smallest = 1 if args.vectors == "auto" else args.vectors
    if lm.max_context is not None and smallest + len(ids) > lm.max_context:
        raise ValueError(
            f"K + L = {smallest} + {len(ids)} exceeds the {lm.max_context} positions of {spec.name!r}; "
            "use fewer vectors or --max-tokens"
        )
    return lm, ids, text


class _CompressDisplay:
    """`memcap compress`'s progress bar per attempt and one line per K tried."""

    def __init__(self, optim, n_tokens: int):
        self.total = max(optim.max_steps, optim.fresh_max_steps or 0)
        self.n_tokens, self.bar = n_tokens, None

    def progress(self, step, active, best):
        from tqdm.auto import tqdm

        if self.bar is None:
            self.bar = tqdm(total=self.total, desc="compress", unit="step", leave=False)
        self.bar.set_postfix(accuracy=f"{best[0]:.3f}", refresh=False)
        self.bar.update(step - self.bar.n)  # tqdm's own rate limit decides when to redraw

    def close(self):
        """Remove the progress bar (an attempt's end, or Ctrl-C)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def report(self, attempt):
        self.close()
        o = attempt.outcome
        part = "" if attempt.L == self.n_tokens else f" of the first {attempt.L} (a longer prefix is not tried)"
        print(
            f"K={attempt.K}: {o.correct}/{o.scored} tokens right{part} (accuracy {o.accuracy:.3f}), "
            f"greedy decoding {'exact' if o.greedy_exact else f'right for {o.greedy_prefix} tokens'}, "
            f"{attempt.steps} steps in {attempt.wall_s:.1f} s",
            flush=True,
        )


def check_writable(path: Path, flag: str) -> None:
    """ValueError naming `path` and why unless a file can be written there: it is no folder,
    and the nearest folder above it that exists takes a new file (a probe file is made and
    removed; the folders between are made when the file is written)."""
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a folder; give a file name, e.g. {path / 'vectors.safetensors'}")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"{flag} {path} cannot be written: {folder} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".probe")
    except OSError as err:
        raise ValueError(
            f"{flag} {path} cannot be written: {folder} takes no new file ({err.strerror}); "
            "give a path in a folder you can write to"
        ) from None
    os.close(fd)
    os.unlink(probe)


def cmd_compress(args) -> int:
    from memcap.core.auto_vectors import fewest_vectors
    from memcap.core.vectors import save_vectors

    check_writable(args.out, "-o")  # before the model loads and the optimisation runs
    optim, search = _optim(args), search_config(args)
    lm, ids, text = _compress_input(args, optim)
    prior = None
    if args.prior is not None:
        from memcap.core.prior import load_prior
        from memcap.stages.job import text_sha

        prior = load_prior(args.prior, lm, None, [text_sha(text)])
    auto = args.vectors == "auto"
    display = _CompressDisplay(optim, len(ids))
    print(
        f"{len(ids)} tokens, {lm.spec.name}, protocol {args.protocol}, preset {optim.preset}, "
        f"K {'auto (up to ' + str(args.max_vectors) + ')' if auto else args.vectors}",
        flush=True,
    )
    try:
        found = fewest_vectors(
            lm,
            ids,
            args.protocol,
            args.seed,
            optim,
            max_vectors=args.max_vectors if auto else args.vectors,
            on_attempt=display.report,
            progress=display.progress,
            counts=None if auto else [args.vectors],
            search=search,
            prior=prior.vectors if prior is not None else None,
        )
    finally:
        display.close()
    best = found.best
    # vectors of a failed K decode (at best) the prefix they were fitted to
    made_from_prior = prior is not None and best.outcome.vectors.shape[0] == prior.vectors.shape[0]
    save_vectors(
        args.out, best.outcome.vectors, lm, args.protocol, ids[: best.L], best.outcome, optim, search.changed(),
        prior=prior.sha if made_from_prior else None,
    )  # fmt: skip
    return _compress_result(found, auto, f"{found.steps} optimiser steps in {found.wall_s:.1f} s; wrote {args.out}")


def _compress_result(found, auto: bool, summary: str) -> int:
    """Print what `memcap compress` found; its exit status (1: -k auto found no K)."""
    best = found.best
    if found.exact:
        print(f"greedy decoding from K={best.K} vector(s) reproduces the text: {summary}")
        return 0
    if not auto:
        print(
            f"greedy decoding from K={best.K} vector(s) does NOT reproduce the text (accuracy "
            f"{best.outcome.accuracy:.3f}); try -k auto: {summary}"
        )
        return 0
    print(
        f"memcap compress: no K up to {found.attempts[-1].K} reproduced the text; the best, K={best.K}, "
        f"got {best.outcome.correct}/{best.outcome.scored} tokens right (accuracy "
        f"{best.outcome.accuracy:.3f}) and decodes the first {best.outcome.greedy_prefix} tokens. "
        f"Try a larger --max-vectors, more --max-steps, or a shorter text. {summary}",
        file=sys.stderr,
    )
    return 1


def cmd_decode(args) -> int:
    """Print the text; exit status 1 when the decoded tokens are not those the vectors were
    made from although they reproduced them then (another model, or an edited file)."""
    from memcap.core.models import load_model
    from memcap.core.vectors import check_for_model, decode_ids, read_vectors_file

    vf = read_vectors_file(args.vectors_file)  # every metadata field checked
    logging.getLogger("memcap.decode").info(
        "%s: K=%d vector(s) of %s, %d tokens, protocol %s, method %s%s",
        vf.path,
        vf.K,
        vf.meta["model"],
        vf.N,
        vf.meta["protocol"],
        vf.method,
        f", search {vf.meta['search']}" if "search" in vf.meta else "",
    )
    spec = _decode_model(args, vf)
    lm = load_model(spec, args.device)
    check_for_model(vf, lm)
    ids = decode_ids(vf, lm)
    print(lm.tokenizer.decode(ids, skip_special_tokens=True), flush=True)
    return _check_decoded(args, vf, ids)


def _decode_model(args, vf):
    """The model to decode with: the file's own (memcap.core.vectors.model_for_file), or
    --model, refused when the file records another one unless --force."""
    from memcap.core.models import resolve_model
    from memcap.core.vectors import model_for_file, model_mismatch

    registry = _registry(args.models_file)
    if args.model is None:
        return model_for_file(vf, registry, args.models_file)
    spec = resolve_model(args.model, registry)
    mismatch = model_mismatch(vf.meta, spec)
    if mismatch and not args.force:
        raise ValueError(
            f"{args.vectors_file}: {mismatch}; another model decodes them into meaningless text. "
            f"Omit --model to use the file's own model ({vf.meta['model']!r}), or add --force to "
            f"decode with {spec.name!r} anyway"
        )
    if mismatch:
        print(
            f"memcap decode: WARNING: {args.vectors_file}: {mismatch}; decoding with "
            f"{spec.name!r} as --force asks: the text is meaningless unless the two have the "
            "same weights",
            file=sys.stderr,
        )
    return spec


def _check_decoded(args, vf, ids: list[int]) -> int:
    """Compare the decoded tokens with the recorded ids_sha; warn on stderr when they differ."""
    from memcap.core.vectors import ids_match, ids_sha

    if ids_match(vf, ids):
        return 0
    if not vf.made_exact:
        print(
            f"memcap decode: note: {vf.path}: these vectors did not reproduce their text when they were "
            f"made (accuracy {vf.meta['accuracy']}), so the text above differs from it",
            file=sys.stderr,
        )
        return 0
    print(
        f"memcap decode: WARNING: {vf.path}: the decoded tokens are NOT the ones these vectors were "
        f"made from, which they reproduced then (ids_sha {vf.meta['ids_sha']} recorded, {ids_sha(ids)} "
        "decoded): the model is not the one that made them, or the file was changed. The text above "
        "is not the compressed text.",
        file=sys.stderr,
    )
    return 0 if args.force else 1


def cmd_job(args) -> None:
    from memcap.stages.job import run_job

    run_job(
        args.model,
        args.texts,
        args.out,
        lengths=args.lengths,
        K=args.vectors,
        protocol=args.protocol,
        optim=_optim(args),
        batch_size=args.batch_size,
        max_samples=args.max_samples,
        device=args.device,
        models_file=args.models_file,
        dataset=args.dataset,
        threads=args.threads,
        mode=args.mode,
        cast_weights=args.cast_weights,
        search=search_config(args),
        prior=args.prior,
    )


def cmd_prior(args) -> None:
    from memcap.stages.prior import build_prior

    check_writable(args.out, "--out")
    n = build_prior(args.sources, args.length, args.out, _registry(args.models_file), K=args.vectors)
    print(f"wrote {args.out}: the mean of {n} lossless {args.length}-token vectors (K={args.vectors})")


def _registry(path: Path):
    """The registry at `path` (main() resolved it: --models-file, or the packaged one)."""
    from memcap.core.models import load_registry

    return load_registry(path)


def _resolve_models_file(args) -> None:
    """--models-file given: it must exist, and replaces the registry shipped with memcap.
    Not given: that registry (memcap.core.models.packaged_registry)."""
    from memcap.core.models import packaged_registry

    if not hasattr(args, "models_file"):
        return
    if args.models_file is None:
        args.models_file = packaged_registry()
        args.models_file_given = False
    elif not args.models_file.is_file():
        what = "is a directory, not a file" if args.models_file.is_dir() else "does not exist"
        raise FileNotFoundError(
            f"--models-file {args.models_file} {what}; give a model registry, a YAML file like "
            "config/models.yaml, or omit --models-file to use the registry shipped with memcap"
        )
    else:
        args.models_file_given = True


def check_device(device: str) -> None:
    """ValueError naming the devices this machine has unless --device is one of them."""
    import torch

    allowed = ["auto", "cpu"]
    cuda = torch.cuda.is_available()
    if cuda:
        allowed += ["cuda", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]
    if torch.backends.mps.is_available():
        allowed.append("mps")
    if device in allowed:
        return
    if device.startswith("cuda") and not cuda:
        why = "CUDA is not available here (no GPU is visible, or torch was built without CUDA)"
    elif device.startswith("cuda"):
        why = "there is no such CUDA device here"
    else:
        why = "not a device name memcap knows"
    raise ValueError(f"--device {device!r}: {why}; allowed here: {', '.join(allowed)}")


def _explain(err: Exception, args) -> str:
    """The error message, naming the registry read where a model name was not found in it."""
    text = str(err)
    if isinstance(err, ValueError) and text.startswith("unknown model") and getattr(args, "models_file", None):
        whose = "given with --models-file" if args.models_file_given else "the one shipped with memcap"
        text += f"; the registry read: {args.models_file} ({whose})"
    return text


INTERRUPTED = {
    "compress": "interrupted; no vectors file was written",
    "decode": "interrupted",
    "job": "interrupted; the finished parts are kept, and a rerun resumes from them",
    "prior": "interrupted; no prior file was written",
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose or args.command == "job" else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    handler = {"compress": cmd_compress, "decode": cmd_decode, "job": cmd_job, "prior": cmd_prior}[args.command]
    try:
        _resolve_models_file(args)
        check_device(getattr(args, "device", "auto"))
        return handler(args) or 0
    except (ValueError, FileNotFoundError) as err:
        print(f"memcap {args.command}: error: {_explain(err, args)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: one line, the shell's status for SIGINT
        print(f"memcap {args.command}: {INTERRUPTED[args.command]}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
