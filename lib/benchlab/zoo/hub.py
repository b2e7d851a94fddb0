"""Loading models: a local save_pretrained directory, a paper spec's hub id, a raw hub id, or a
tiny/small spec's pinned briefly trained model (zoo.train.trained); offline by default in tests.

    HF_HUB_OFFLINE=1 python -c "from benchlab import zoo; print(zoo.load('opt-tiny').config)"
    BENCHLAB_MODELS=DIR python -c "from benchlab import zoo; print(zoo.hub.resolve('opt-125m'))"

Every paper spec's weights and tokenizer go through `resolve`: a models folder DIR (argument, else
$BENCHLAB_MODELS) holds DIR/<org>--<name>/ for hub id <org>/<name>, a save_pretrained folder with
its tokenizer (real weights, or `benchlab zoo paper-shapes DIR`), checked by check_folder.
"""

import contextlib
import functools
import json
import os
from pathlib import Path

import huggingface_hub.constants as hc
import torch
import transformers
from huggingface_hub import try_to_load_from_cache
from safetensors import SafetensorError

from ..core.errors import BenchlabError, first_line
from .models import spec
from .specs import FAMILIES, MODELS
from .tokenize import HFTokenizer, tokenizer
from .train import trained

WEIGHT_PATTERNS = ("*.safetensors", "*.bin")
NOT_WEIGHTS = ("training_args.bin",)
TOKENIZER_MARKERS = ("tokenizer.json", "tokenizer.model", "vocab.json")  # any one of them
TOKENIZER_FILES = TOKENIZER_MARKERS + ("merges.txt", "vocab.txt", "spiece.model",
                                       "tokenizer_config.json", "special_tokens_map.json",
                                       "added_tokens.json")
# the published values a stand-in folder must share with its spec (num layers may differ)
SHAPE_KEYS = ("vocab_size", "hidden_size", "n_embd", "ffn_dim", "intermediate_size", "n_inner",
              "num_attention_heads", "n_head", "num_key_value_heads", "word_embed_proj_dim",
              "num_experts", "do_layer_norm_before")


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").strip().upper() in {"1", "ON", "YES", "TRUE"}


def models_folder(models_dir=None) -> Path | None:
    """The models folder: the argument, else $BENCHLAB_MODELS (read at call time), else None."""
    root = models_dir or os.environ.get("BENCHLAB_MODELS") or None
    return Path(os.fspath(root)).expanduser() if root else None


def folder_name(hub_id: str) -> str:
    """`facebook/opt-125m` -> `facebook--opt-125m`; `gpt2` -> `gpt2`."""
    return hub_id.replace("/", "--")


def hf_cache() -> Path:
    """The HF hub cache, read at call time ($HF_HUB_CACHE, $HF_HOME/hub, else the default)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path(hc.HF_HUB_CACHE)


def cached_snapshot(hub_id: str) -> Path | None:
    """The HF cache snapshot folder of `hub_id` (its name is the commit) when it holds the config
    and at least one weight file, else None. Touches no network."""
    try:
        config = try_to_load_from_cache(hub_id, "config.json", cache_dir=hf_cache())
    except ValueError:  # not a valid repo id
        return None
    if not isinstance(config, str):
        return None
    snapshot = Path(config).parent
    return snapshot if weight_files(snapshot) else None


def weight_files(folder: Path) -> list[Path]:
    """The weight files of a folder, sorted by name (*.safetensors, *.bin; not training args)."""
    found = {p for pattern in WEIGHT_PATTERNS for p in folder.glob(pattern)}
    return sorted((p for p in found if p.name not in NOT_WEIGHTS and p.is_file()),
                  key=lambda p: p.name)


def tokenizer_files(folder: Path) -> list[Path]:
    return sorted((folder / n for n in TOKENIZER_FILES if (folder / n).is_file()),
                  key=lambda p: p.name)


def _spec_of_hub_id(hub_id: str):
    return next((s for _, s in MODELS.items() if s.hub_id == hub_id), None)


def _stamp(folder: Path) -> tuple:
    st = (folder / "config.json").stat() if (folder / "config.json").exists() else None
    names = tuple(sorted(p.name for p in folder.iterdir()))
    return (st.st_mtime_ns, st.st_size) if st else None, names


def check_folder(folder, hub_id: str) -> None:
    """A one-line BenchlabError naming the folder and the field when `folder` cannot stand for
    `hub_id` (no config.json, weights or tokenizer files, another model_type or published shape
    than the spec's; the number of layers may differ). Cached per config.json mtime."""
    folder = Path(folder)
    _check(str(folder), hub_id, _stamp(folder))


@functools.lru_cache(maxsize=256)
def _check(folder: str, hub_id: str, stamp: tuple) -> None:
    path = Path(folder)
    if stamp[0] is None:
        raise BenchlabError(f"{path}: config.json: missing (expected a save_pretrained folder "
                            f"for {hub_id})")
    if not weight_files(path):
        raise BenchlabError(f"{path}: weights: no *.safetensors or *.bin files (a save_pretrained "
                            f"folder for {hub_id})")
    if not any((path / n).is_file() for n in TOKENIZER_MARKERS):
        raise BenchlabError(f"{path}: tokenizer: no tokenizer files "
                            f"({', '.join(TOKENIZER_MARKERS)}); save the tokenizer of {hub_id} "
                            "there too")
    s = _spec_of_hub_id(hub_id)
    if s is None:
        return
    try:
        raw = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise BenchlabError(f"{path / 'config.json'}: not valid JSON ({first_line(e)})") from None
    if not isinstance(raw, dict) or raw.get("model_type") != s.family:
        got = raw.get("model_type") if isinstance(raw, dict) else None
        raise BenchlabError(f"{path}: config.json: model_type: {got!r}, expected {s.family!r} "
                            f"for {hub_id}")
    config = getattr(transformers, FAMILIES[s.family][0]).from_dict(raw)
    for key in SHAPE_KEYS:
        if key in s.config and getattr(config, key, None) != s.config[key]:
            raise BenchlabError(
                f"{path}: config.json: {key}: {getattr(config, key, None)!r}, expected "
                f"{s.config[key]!r} for {hub_id} (another architecture; only the number of "
                "layers may differ)")


def hub_id_of(name_or_hub_id) -> str:
    """A paper spec's hub id, or the argument itself (a raw hub id). Tiny/small specs have none."""
    name = os.fspath(name_or_hub_id)
    if name in MODELS or "/" not in name:
        s = spec(name)  # "did you mean" on typos
        if s.hub_id is None:
            raise BenchlabError(f"{name}: a {s.scale} spec has no hub id (its weights are "
                                "zoo.trained / zoo.load of the name)")
        return s.hub_id
    return name


def resolve(name_or_hub_id, models_dir=None) -> str:
    """Where the weights of a paper spec, hub id or local folder are: a folder given as is, else
    the models folder's DIR/<org>--<name>/ (after check_folder), else the hub id (for
    from_pretrained). Offline and not in the HF cache either: one BenchlabError naming the hub id
    and the folder expected (pytest callers turn it into a skip)."""
    path = Path(os.fspath(name_or_hub_id)).expanduser()
    if path.is_dir():
        return str(path)
    hub_id = hub_id_of(name_or_hub_id)
    root = models_folder(models_dir)
    if root is not None and (root / folder_name(hub_id)).is_dir():
        folder = root / folder_name(hub_id)
        check_folder(folder, hub_id)
        return str(folder)
    if _offline() and cached_snapshot(hub_id) is None:
        expected = (f"no folder {root / folder_name(hub_id)}" if root is not None else
                    f"no models folder: set BENCHLAB_MODELS=DIR with DIR/{folder_name(hub_id)}/")
        raise BenchlabError(
            f"{hub_id}: weights not available offline ({expected}, not in the HF cache "
            f"{hf_cache()}); download them where the hub is reachable (`hf download {hub_id}`, "
            "HF_TOKEN for gated models) and save_pretrained model + tokenizer into that folder or "
            "set HF_HOME, or write random weights of the same shape with `benchlab zoo "
            "paper-shapes DIR`") from None
    return hub_id


def _hub_kwargs(where: str) -> dict:
    if Path(where).is_dir():
        return {"local_files_only": True}
    kwargs = {"token": os.environ.get("HF_TOKEN") or None, "cache_dir": str(hf_cache())}
    if _offline():
        kwargs["local_files_only"] = True
    return kwargs


def _is_tiny_name(name_or_dir) -> bool:
    if Path(os.fspath(name_or_dir)).expanduser().is_dir():
        return False
    if not (isinstance(name_or_dir, str) and "/" not in name_or_dir or name_or_dir in MODELS):
        return False
    return spec(name_or_dir).hub_id is None


def load(name_or_dir, *, dtype=None, device="cpu", models_dir=None
         ) -> transformers.PreTrainedModel:
    """A model in eval mode, float32 unless `dtype`: a local save_pretrained folder, a paper spec or
    hub id through `resolve` (HF_TOKEN passed for gated models), or a tiny/small spec's
    `trained(name)`. Offline, weights that are not local raise one BenchlabError saying what to
    download."""
    path = Path(os.fspath(name_or_dir)).expanduser()
    if _is_tiny_name(name_or_dir):  # a tiny/small spec: the pinned briefly trained model
        return trained(spec(name_or_dir).name).to(device=device, dtype=dtype or torch.float32)
    if path.exists() and not path.is_dir():
        raise BenchlabError(f"{path}: not a model directory (expected config.json + weights)")
    where = resolve(name_or_dir, models_dir)
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(
            where, dtype=dtype or torch.float32, **_hub_kwargs(where))
    except (OSError, ValueError, SafetensorError, RuntimeError) as e:  # hub errors are OSErrors;
        if isinstance(e, RuntimeError) and not Path(where).is_dir():  # corrupt local weights
            raise
        first = first_line(e)
        if Path(where).is_dir():
            raise BenchlabError(f"{where}: cannot load model ({first})") from None
        raise BenchlabError(
            f"{where}: model not available offline ({first[:160]}); download it where the hub is "
            f"reachable (`hf download {where}`, HF_TOKEN for gated models) and set HF_HOME, or "
            "pass a local directory") from None
    return model.to(device).eval()


def load_tokenizer(name_or_dir, models_dir=None):
    """The transformers tokenizer of a paper spec, hub id or local folder, through `resolve` (the
    models folder first); a tiny/small spec gives the zoo BPE as a PreTrainedTokenizerFast."""
    if _is_tiny_name(name_or_dir):
        return tokenizer("bpe").to_transformers()
    where = resolve(name_or_dir, models_dir)
    if Path(where).is_dir() and not any((Path(where) / n).is_file() for n in TOKENIZER_MARKERS):
        raise BenchlabError(f"{where}: tokenizer: no tokenizer files "
                            f"({', '.join(TOKENIZER_MARKERS)})")
    try:
        return transformers.AutoTokenizer.from_pretrained(where, **_hub_kwargs(where))
    except (OSError, ValueError) as e:
        raise BenchlabError(f"{where}: cannot load tokenizer ({first_line(e)[:200]})") from None


@contextlib.contextmanager
def offline():
    """Force offline hub access inside the block (for tests and air-gapped runs)."""
    old_env, old_const = os.environ.get("HF_HUB_OFFLINE"), hc.HF_HUB_OFFLINE
    os.environ["HF_HUB_OFFLINE"], hc.HF_HUB_OFFLINE = "1", True
    try:
        yield
    finally:
        hc.HF_HUB_OFFLINE = old_const
        if old_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old_env


def any_tokenizer(name_or_dir: str = "bpe"):
    """A zoo tokenizer kind ("bpe", "byte"), else a hub id or local folder loaded through
    zoo.load_tokenizer ($BENCHLAB_MODELS, HF_HUB_OFFLINE) as an HFTokenizer."""
    if name_or_dir in ("bpe", "byte"):
        return tokenizer(name_or_dir)
    return HFTokenizer(load_tokenizer(name_or_dir), name_or_dir)
