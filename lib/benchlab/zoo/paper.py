"""Paper-shaped models: random weights of every paper spec's published architecture, cut to N
layers, with a tokenizer of the published vocab size and special-token ids, written into the
models-folder layout that zoo.hub.resolve reads (DIR/<org>--<name>/): the exact paper code path
without the published weights.

    benchlab zoo paper-shapes DIR [--layers 1] [--dtype bfloat16] [--models opt-125m gpt2]
    BENCHLAB_MODELS=DIR HF_HUB_OFFLINE=1 python -c "from benchlab import zoo; zoo.load('opt-125m')"

The tokenizer is a byte-level BPE of LEARNED tokens (the zoo corpus) padded with dummy tokens to
the vocab size, the published special tokens at their ids (Llama-2's is SentencePiece: only the
ids match). Each folder carries MARKER; one with the same marker is skipped (resumable), one
without (real weights) is left alone.
"""

import functools
import json
import os
import shutil
from pathlib import Path

import torch

from ..core.errors import BenchlabError
from ..core.options import bounded, output_dir
from ..core.provenance import config_hash
from .hub import folder_name
from .models import hf_config, model_class, names, spec
from .tokenize import _train_bpe

MARKER = "paper-shapes.json"
LEARNED = 8192  # BPE tokens learned on the zoo corpus; the rest of each vocab is dummies
TOKENIZER_VERSION = 1  # bump when the tokenizer recipe changes (rewrites the folders)
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
# each family's published special tokens: fixed ones by id, the rest by role at the ids of the
# spec's config (bos/eos/pad_token_id)
ROLES = {
    "opt": dict(bos="</s>", eos="</s>", pad="<pad>", unk="<unk>"),
    "gpt2": dict(bos="<|endoftext|>", eos="<|endoftext|>", unk="<|endoftext|>"),
    "olmoe": dict(eos="<|endoftext|>", pad="<|padding|>"),
    "llama": dict(bos="<s>", eos="</s>", unk="<unk>"),
}
FIXED = {"opt": {0: "<s>", 3: "<unk>"}, "olmoe": {0: "|||IP_ADDRESS|||"}, "llama": {0: "<unk>"},
         "gpt2": {}}
ADD_BOS = ("opt", "llama")  # their published tokenizers start every text with the BOS token


def layers_key(family: str) -> str:
    return "n_layer" if family == "gpt2" else "num_hidden_layers"


def paper_config(name: str, layers: int = 1):
    """The transformers config of paper spec `name` with its number of layers cut to `layers`."""
    s = spec(name)
    config = hf_config(s)
    setattr(config, layers_key(s.family), layers)
    return config


def special_tokens(name: str) -> dict[int, str]:
    """{id: token} of the spec's published special tokens."""
    s = spec(name)
    out = dict(FIXED[s.family])
    for role, token in ROLES[s.family].items():
        if s.config.get(f"{role}_token_id") is not None:
            out[s.config[f"{role}_token_id"]] = token
    return out


@functools.cache
def _learned() -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """The byte-level BPE learned on the zoo corpus: tokens in id order, merges."""
    model = json.loads(_train_bpe(LEARNED, specials=[]).to_str())["model"]
    vocab = sorted(model["vocab"].items(), key=lambda kv: kv[1])
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return tuple(t for t, _ in vocab), tuple(merges)


def build_tokenizer(name: str):
    """A PreTrainedTokenizerFast with exactly the spec's vocab size and special-token ids."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    s = spec(name)
    size, specials = s.config["vocab_size"], special_tokens(name)
    learned, merges = _learned()
    if size < len(learned) + len(specials):
        raise BenchlabError(f"{name}: vocab_size: {size} is below the {LEARNED} learned tokens")
    rest = iter(t for t in learned if t not in set(specials.values()))
    vocab = {}
    for i in range(size):
        token = specials.get(i) or next(rest, None) or f"<|unused{i}|>"
        vocab[token] = i
    tok = Tokenizer(models.BPE(vocab=vocab, merges=list(merges)))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(sorted(set(specials.values())))
    if s.family in ADD_BOS:
        bos = (specials[s.config["bos_token_id"]], s.config["bos_token_id"])
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos[0]} $A", pair=f"{bos[0]} $A {bos[0]} $B", special_tokens=[bos])
    roles = {f"{role}_token": token for role, token in ROLES[s.family].items()
             if role == "unk" or s.config.get(f"{role}_token_id") is not None}
    return PreTrainedTokenizerFast(tokenizer_object=tok, **roles)


def marker(name: str, layers: int, dtype: str, seed: int) -> dict:
    s = spec(name)
    return {"spec": name, "hub_id": s.hub_id, "spec_hash": config_hash(s), "layers": layers,
            "dtype": dtype, "seed": seed, "learned_tokens": LEARNED,
            "tokenizer_version": TOKENIZER_VERSION}


def _read_marker(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None


def write_one(name: str, root, layers: int = 1, dtype: str = "bfloat16", seed: int = 0) -> str:
    """Write paper spec `name` into root/<org>--<name>/; returns "written", "exists" (same marker)
    or "kept" (a folder this did not write, e.g. real weights: left alone)."""
    s = spec(name)
    if s.hub_id is None:
        raise BenchlabError(f"{name}: not a paper spec (paper specs: {', '.join(names('paper'))})")
    if dtype not in DTYPES:
        raise BenchlabError(f"--dtype {dtype}: expected one of {', '.join(DTYPES)}")
    if layers < 1:
        raise BenchlabError(f"--layers {layers}: expected at least 1")
    root = Path(root)
    folder, want = root / folder_name(s.hub_id), marker(name, layers, dtype, seed)
    if folder.exists():
        old = _read_marker(folder)
        if old == want:
            return "exists"
        if old is None:
            return "kept"
    tmp = root / f".{folder.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = model_class(s.family)._from_config(paper_config(name, layers),
                                                       dtype=DTYPES[dtype])
        model.save_pretrained(tmp)
        del model
        build_tokenizer(name).save_pretrained(tmp)
        (tmp / MARKER).write_text(json.dumps(want, indent=1, sort_keys=True) + "\n")
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return "written"


def write_all(root, layers: int = 1, dtype: str = "bfloat16", models=None, seed: int = 0,
              progress: bool = True) -> dict[str, str]:
    """Every paper spec (or `models`) into `root`: {name: "written" | "exists" | "kept"}."""
    from tqdm import tqdm

    if layers < 1:
        raise BenchlabError(f"--layers {layers}: expected at least 1")
    Path(root).mkdir(parents=True, exist_ok=True)
    out = {}
    bar = tqdm(list(models or names("paper")), desc="paper-shapes", unit="model",
               disable=not progress)
    for name in bar:
        bar.set_postfix_str(name)
        out[name] = write_one(name, root, layers, dtype, seed)
    return out


def add_parser(sub) -> None:
    p = sub.add_parser(
        "paper-shapes", help="write random-weight models of every paper spec (published shapes, "
        "cut to --layers) with tokenizers into DIR/<org>--<name>/ (BENCHLAB_MODELS=DIR)",
        description=__doc__.split("\n\n")[0])
    p.add_argument("dir", metavar="DIR", type=output_dir,
                   help="the models folder (BENCHLAB_MODELS)")
    p.add_argument("--layers", type=bounded(int, lo=1, hi=1024), default=1,
                   help="layers per model (default: 1)")
    p.add_argument("--dtype", default="bfloat16", choices=list(DTYPES),
                   help="dtype of the saved weights (default: bfloat16, half of float32's disk; "
                   "zoo.load reads them as float32 unless asked otherwise); all 9 specs at 1 "
                   "layer: about 3.5 GB in bfloat16")
    p.add_argument("--models", nargs="+", choices=names("paper"), default=None, metavar="NAME",
                   help=f"paper specs (default: all: {', '.join(names('paper'))})")
    p.add_argument("--seed", type=bounded(int, lo=0), default=0)


def run(args) -> int:
    done = write_all(args.dir, args.layers, args.dtype, args.models, args.seed)
    for name, state in done.items():
        where = Path(args.dir) / folder_name(spec(name).hub_id)
        note = " (not written by paper-shapes: left alone)" if state == "kept" else ""
        print(f"{state} {where}{note}")
    return 0
