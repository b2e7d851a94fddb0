"""Pinned zoo artifacts: the tiny-scale corpus, tokenizer and trained tiny models, shipped as files.

    benchlab zoo verify          # check every shipped artifact against MANIFEST.json
    benchlab zoo pin             # rebuild tokenizer + tiny models from the shipped corpus (minutes)
    benchlab zoo paper-shapes DIR [--layers N]   # random paper-shaped models (zoo.paper)

The corpus root is CPython 3.11.7's `pydoc_data.topics`, frozen so the text does not change with
the Python version; `pin` builds the BPE and the tiny models from it on one torch thread, so a
rebuild on one machine is bit-identical run to run (why the bytes are shipped: zoo.manifest).
"""

import json

from .manifest import (
    ARTIFACTS,
    CORPUS,
    MODELS,
    TOKENIZER,
    file_name,
    manifest,
    verify,
    write_manifest,
)


def pin(models=MODELS) -> dict:
    """Rebuild the tokenizer from the shipped corpus, then train each tiny model (one thread) and
    write it, with MANIFEST.json, under zoo/artifacts/. Returns the training stats."""
    import torch
    from safetensors.torch import save_file

    from . import tokenize, train  # the builder's own dependencies: only `pin` needs them

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
    """`benchlab zoo verify` | `benchlab zoo pin [--corpus] [--models NAME ...]` |
    `benchlab zoo paper-shapes DIR [--layers N] [--dtype D] [--models NAME ...]`."""
    import argparse

    from . import paper

    parser = argparse.ArgumentParser(prog="benchlab zoo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("verify", help="check every shipped artifact against MANIFEST.json")
    p = sub.add_parser("pin", help="rebuild the tokenizer and tiny models (commit the result)")
    p.add_argument("--corpus", action="store_true",
                   help="first re-freeze the corpus from this Python's pydoc_data (changes it)")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS,
                   help="(default: all)")
    paper.add_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "paper-shapes":
        return paper.run(args)
    if args.command == "verify":
        for target in verify():
            print(f"ok {target}")
        return 0
    if args.corpus:
        import lzma

        from .text import build_corpus

        blob = json.dumps(build_corpus(), ensure_ascii=False, sort_keys=True).encode()
        (ARTIFACTS / CORPUS).write_bytes(lzma.compress(blob, preset=9))
    for name, st in pin(args.models).items():
        print(f"{name}: val loss {st['before']} -> {st['after']}")
    return 0
