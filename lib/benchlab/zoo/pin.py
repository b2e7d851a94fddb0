"""Pinned zoo artifacts: the tiny-scale corpus, tokenizer and trained tiny models, shipped as files.

    benchlab zoo verify          # check every shipped artifact against MANIFEST.json
    benchlab zoo pin             # rebuild tokenizer + tiny models from the shipped corpus (minutes)

Every machine uses these bytes, so a tiny-scale result does not depend on the CPU that trained
the model (AMD and Intel kernels round differently, and training amplifies it). The corpus root,
`corpus-pydoc.json.xz`, is CPython 3.11.7's `pydoc_data.topics`, frozen so the text does not change
with the Python version; the BPE and the four tiny models are built from it by `benchlab zoo pin`
(one torch thread, so a rebuild on one machine is bit-identical run to run). Each file is checked
by sha256 against MANIFEST.json on first use; a mismatch is a one-line BenchlabError naming it.
"""

import functools
import json
from pathlib import Path

from ..core.errors import BenchlabError
from ..core.provenance import config_hash, sha256_file
from .specs import MODELS as SPECS

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
MANIFEST = ARTIFACTS / "MANIFEST.json"
CORPUS = "corpus.json.xz"
TOKENIZER = "bpe-4096.json"
MODELS = ("opt-tiny", "olmoe-tiny", "llama-tiny", "gpt2-tiny")  # tiny specs, default schedule


@functools.cache
def manifest() -> dict:
    try:
        return json.loads(MANIFEST.read_text())
    except (OSError, ValueError) as e:
        raise BenchlabError(f"{MANIFEST}: cannot read the zoo manifest ({e})") from None


def file_name(name: str) -> str:
    """An artifact's file name: models by spec name, the corpus and tokenizer by file name."""
    return f"{name}.safetensors" if name in MODELS else name


def is_pinned(name: str) -> bool:
    return file_name(name) in manifest().get("files", {})


def digest(name: str) -> str:
    """The sha256 of a pinned artifact (a model spec name, CORPUS or TOKENIZER), from the
    manifest: cheap, and what records carry as their inputs."""
    entry = manifest().get("files", {}).get(file_name(name))
    if entry is None:
        raise BenchlabError(f"{MANIFEST}: files: no pinned artifact {file_name(name)!r}")
    return entry["sha256"]


@functools.cache
def path(name: str) -> Path:
    """The verified path of a pinned artifact: size and sha256 equal the manifest's, else a
    one-line BenchlabError naming the file."""
    fname = file_name(name)
    entry = manifest().get("files", {}).get(fname)
    target = ARTIFACTS / fname
    if entry is None:
        raise BenchlabError(f"{MANIFEST}: files: no pinned artifact {fname!r}")
    if not target.is_file():
        raise BenchlabError(f"{target}: pinned zoo artifact missing (run `benchlab zoo pin`)")
    if target.stat().st_size != entry["bytes"] or sha256_file(target) != entry["sha256"]:
        raise BenchlabError(f"{target}: sha256 differs from {MANIFEST.name} (a corrupted or "
                            "edited artifact; restore it from git or run `benchlab zoo pin`)")
    return target


def inputs(*names: str) -> dict[str, str]:
    """{"spec:<name>": hash, "model:<name>": sha, "tokenizer": sha, "corpus": sha} for records'
    `inputs`: the hash of each named zoo spec (zoo.specs is outside the code version, so a record
    depends on its own model's spec only) and the sha256 of each pinned model."""
    out = {f"spec:{n}": config_hash(SPECS.get(n)) for n in names if n in SPECS}
    out.update({f"model:{n}": digest(n) for n in names if n in MODELS and is_pinned(n)})
    out.update(tokenizer=digest(TOKENIZER), corpus=digest(CORPUS))
    return out


def write_manifest(stats: dict) -> None:
    files = {}
    for f in sorted(ARTIFACTS.iterdir()):
        if f.name != MANIFEST.name and f.is_file() and not f.name.startswith("."):
            files[f.name] = {"sha256": sha256_file(f), "bytes": f.stat().st_size}
    MANIFEST.write_text(json.dumps({"files": files, "training": stats}, indent=1,
                                   sort_keys=True) + "\n")
    manifest.cache_clear()
    path.cache_clear()


def pin(models=MODELS) -> dict:
    """Rebuild the tokenizer from the shipped corpus, then train each tiny model (one thread) and
    write it, with MANIFEST.json, under zoo/artifacts/. Returns the training stats."""
    import torch
    from safetensors.torch import save_file

    from . import tokenize, train

    tok = tokenize._train_bpe()
    tok.save(str(ARTIFACTS / TOKENIZER))
    write_manifest(manifest().get("training", {}))
    tokenize.reset()
    stats = dict(manifest().get("training", {}))
    for name in models:
        with torch.random.fork_rng(devices=[]):
            model, st = train.train_model(name, train.train_config(name), seed=0, threads=1)
        save_file(train.state_of(model), str(ARTIFACTS / file_name(name)),
                  metadata={"name": name})
        stats[name] = {k: st[k] for k in ("before", "after", "train", "seconds")}
        write_manifest(stats)
    return stats


def main(argv: list[str] | None = None) -> int:
    """`benchlab zoo verify` | `benchlab zoo pin [--corpus] [--models NAME ...]`."""
    import argparse

    parser = argparse.ArgumentParser(prog="benchlab zoo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("verify", help="check every shipped artifact against MANIFEST.json")
    p = sub.add_parser("pin", help="rebuild the tokenizer and tiny models (commit the result)")
    p.add_argument("--corpus", action="store_true",
                   help="first re-freeze the corpus from this Python's pydoc_data (changes it)")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS,
                   help="(default: all)")
    args = parser.parse_args(argv)
    if args.command == "verify":
        for fname in manifest()["files"]:
            print(f"ok {path(fname.removesuffix('.safetensors'))}")
        return 0
    if args.corpus:
        import lzma

        from .text import build_corpus

        blob = json.dumps(build_corpus(), ensure_ascii=False, sort_keys=True).encode()
        (ARTIFACTS / CORPUS).write_bytes(lzma.compress(blob, preset=9))
    for name, st in pin(args.models).items():
        print(f"{name}: val loss {st['before']} -> {st['after']}")
    return 0
