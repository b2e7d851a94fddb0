"""`benchlab prepare`: local text or JSONL -> the token formats the experiments read.

    benchlab prepare nanogpt corpus.txt data/mycorpus          # train.bin, val.bin, meta.json
    benchlab prepare nanogpt --synthetic 200000 data/synth     # the zoo grammar, no input file
    benchlab prepare nanogpt corpus.txt data/owt --tokenizer gpt2   # GPT-2's BPE, eos after docs
    benchlab prepare npy corpus.txt data/tokens.npy            # CS336 .npy token array
    benchlab prepare jsonl e2e.jsonl data/records.jsonl        # normalized {"prompt", "target"}

Text input: documents are separated by "<|endoftext|>" when the file contains it, else by blank
lines (--split overrides). JSONL input: each row's prompt and target (data.to_record) joined by a
newline is one document. nanogpt puts the tokenizer's eos id after every document and records it
in meta.json as eot_id (with vocab_size and the tokenizer; over 65536 ids is an error: uint16).
"""

import argparse
import json
from pathlib import Path

import numpy as np

from ..core.errors import BenchlabError, fail
from ..core.options import bounded, output_dir, output_file
from . import data
from .hub import any_tokenizer
from .text import length_stats, synthetic_documents
from .tokenize import encode_documents

EOT_TEXT = "<|endoftext|>"


def read_documents(path: Path, split: str = "auto") -> list[str]:
    """Documents of a local .txt (split as described above) or .jsonl file."""
    if not path.is_file():
        raise fail(str(path), "input", "no such file")
    if path.suffix == ".jsonl":
        records = data.read_records(path)
        return [f"{r.prompt}\n{r.target}" if r.prompt else r.target for r in records]
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise fail(str(path), "encoding", f"not UTF-8 ({e.reason} at byte {e.start})") from None
    if split == "auto":
        split = "eot" if EOT_TEXT in text else "blank"
    if split == "eot":
        parts = text.split(EOT_TEXT)
    elif split == "blank":
        parts = text.replace("\r\n", "\n").split("\n\n")
    elif split == "line":
        parts = text.splitlines()
    else:
        parts = [text]
    docs = [p.strip() for p in parts if p.strip()]
    if not docs:
        raise fail(str(path), "input", "no documents (the file is empty)")
    return docs


def _check_new(path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise fail(str(path), "output", "exists; pass --force to overwrite")


def _split(n: int, val_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of validation documents: a seeded random subset, at least one when n >= 2."""
    is_val = np.random.default_rng(seed).random(n) < val_fraction
    if n >= 2 and not is_val.any():
        is_val[-1] = True
    if is_val.all() and n >= 2:
        is_val[0] = False
    return is_val


def cmd_nanogpt(args) -> int:
    out = Path(args.output)
    for name in ("train.bin", "val.bin", "meta.json"):
        _check_new(out / name, args.force)
    tok = any_tokenizer(args.tokenizer)
    if tok.vocab_size > 2**16:
        raise fail(args.tokenizer, "vocab_size", f"{tok.vocab_size}: ids over 65535 do not fit "
                   "nanoGPT's uint16 bins")
    if args.synthetic:
        docs = synthetic_documents(args.synthetic, seed=args.seed)
    elif args.input:
        docs = read_documents(Path(args.input), args.split)
    else:
        raise BenchlabError("prepare nanogpt: input: give an input file or --synthetic N")
    is_val = _split(len(docs), args.val_fraction, args.seed)
    out.mkdir(parents=True, exist_ok=True)
    for name, mask in (("train", ~is_val), ("val", is_val)):
        chosen = [d for d, keep in zip(docs, mask, strict=True) if keep]
        data.write_bin(out / f"{name}.bin", encode_documents(chosen, tok))
    meta = {"vocab_size": tok.vocab_size, "eot_id": tok.eot_id, "tokenizer": tok.kind,
            "documents": {"train": int((~is_val).sum()), "val": int(is_val.sum())},
            "source": str(args.input) if args.input else f"synthetic({args.synthetic}, "
                                                           f"seed={args.seed})",
            "lengths": length_stats(docs)}
    (out / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
    print(f"wrote {out}/train.bin ({meta['documents']['train']} documents), "
          f"{out}/val.bin ({meta['documents']['val']}), meta.json")
    return 0


def cmd_npy(args) -> int:
    out = Path(args.output)
    _check_new(out, args.force)
    docs = read_documents(Path(args.input), args.split)
    tokens = encode_documents(docs, args.tokenizer)
    out.parent.mkdir(parents=True, exist_ok=True)
    data.write_npy(out, tokens, dtype=np.dtype(args.dtype))
    print(f"wrote {out}: {len(tokens)} tokens ({args.dtype}) from {len(docs)} documents")
    return 0


def cmd_jsonl(args) -> int:
    out = Path(args.output)
    _check_new(out, args.force)
    path = Path(args.input)
    if path.suffix == ".jsonl":
        rows = [{"prompt": r.prompt, "target": r.target} for r in data.read_records(path)]
    else:
        rows = [{"prompt": "", "target": d} for d in read_documents(path, args.split)]
    out.parent.mkdir(parents=True, exist_ok=True)
    data.write_jsonl(out, rows)
    print(f"wrote {out}: {len(rows)} records")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="benchlab prepare", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="format", required=True)

    def common(p, tokens: str | None = "zoo"):
        p.add_argument("--split", choices=["auto", "eot", "blank", "line", "none"],
                       default="auto", help="how a text file splits into documents (auto)")
        p.add_argument("--force", action="store_true", help="overwrite existing outputs")
        if tokens == "zoo":
            p.add_argument("--tokenizer", choices=["bpe", "byte"], default="bpe",
                           help="zoo tokenizer (bpe)")
        elif tokens == "any":
            p.add_argument("--tokenizer", default="bpe", metavar="NAME_OR_DIR",
                           help="zoo tokenizer (bpe, byte), or a hub id (gpt2) or local "
                           "tokenizer folder through zoo.load_tokenizer (bpe)")

    p = sub.add_parser("nanogpt", help="train.bin/val.bin uint16 + meta.json (SubLoRA)")
    p.add_argument("input", nargs="?", help="a .txt or .jsonl file")
    p.add_argument("output", type=output_dir, help="output directory")
    p.add_argument("--synthetic", type=bounded(int, lo=0), default=0, metavar="N",
                   help="use N zoo synthetic documents instead of an input file (0)")
    p.add_argument("--val-fraction", type=bounded(float, gt=0, lt=1), default=0.1,
                   help="documents held out, in (0, 1) (0.1)")
    p.add_argument("--seed", type=bounded(int, lo=0), default=0,
                   help="split and synthetic seed (0)")
    common(p, tokens="any")
    p.set_defaults(func=cmd_nanogpt)
    p = sub.add_parser("npy", help="one .npy token array (CS336 timing)")
    p.add_argument("input")
    p.add_argument("output", type=output_file)
    p.add_argument("--dtype", choices=["uint16", "int32", "int64"], default="uint16",
                   help="array dtype (uint16)")
    common(p)
    p.set_defaults(func=cmd_npy)
    p = sub.add_parser("jsonl", help="normalized {prompt, target} JSON lines (Long Exposure)")
    p.add_argument("input")
    p.add_argument("output", type=output_file)
    common(p, tokens=None)
    p.set_defaults(func=cmd_jsonl)
    return parser


def main(argv: list[str] | None = None) -> int:
    """`benchlab prepare ...`; bad input raises BenchlabError (the top CLI prints one line)."""
    args = build_parser().parse_args(argv)
    if getattr(args, "synthetic", 0) and args.input:
        raise BenchlabError("prepare nanogpt: input: give an input file or --synthetic, not both")
    return args.func(args)
