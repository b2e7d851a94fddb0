"""Token streams and the real-data formats the experiments read.

    python -c "from benchlab.zoo import data; print(data.document_lengths([5, 0, 7, 8, 0], 0))"

Formats (each has a writer and a reader, and `benchlab prepare` produces them from local files):
- nanoGPT: train.bin / val.bin, a flat uint16 token stream with EOT after every document, read as
  np.memmap; `eot_indices` and `document_lengths` recover the documents (SubLoRA).
- CS336: a .npy integer token array read with np.load(mmap_mode="r") (timing).
- JSONL records: one JSON object per line; instruction-style {"instruction", "input", "output"}
  or E2E-style {"meaning_representation", "human_reference"} -> (prompt, target) (Long Exposure).
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import fail
from .batches import fixed_batches, random_batch, token_batches  # noqa: F401  (re-exported)


# ---- nanoGPT: train.bin / val.bin (uint16 stream, EOT after every document) ----
def write_bin(path, tokens) -> Path:
    """Write a uint16 token stream (nanoGPT layout); atomic, refuses ids >= 65536."""
    from .cache import atomic_path

    arr = np.asarray(tokens)
    if arr.size and (arr.min() < 0 or arr.max() >= 2**16):
        raise fail(str(path), "tokens", f"ids must fit uint16, got [{arr.min()}, {arr.max()}]")
    path = Path(path)
    with atomic_path(path) as tmp:
        arr.astype(np.uint16).tofile(tmp)
    return path


def read_bin(path) -> np.memmap:
    """A nanoGPT .bin file as a read-only uint16 memmap (checked: exists, non-empty, even size)."""
    path = Path(path)
    if not path.is_file():
        raise fail(str(path), "file", "no such file (expected a nanoGPT uint16 .bin)")
    size = path.stat().st_size
    if size == 0 or size % 2:
        raise fail(str(path), "size", f"{size} bytes: not a non-empty uint16 token stream")
    return np.memmap(path, dtype=np.uint16, mode="r")


def read_nanogpt(directory) -> dict:
    """{"train": memmap, "val": memmap, "meta": dict} from a directory with train.bin, val.bin and
    optionally meta.json ({"vocab_size", "eot_id", "tokenizer"}, written by `benchlab prepare`)."""
    directory = Path(directory)
    meta_path = directory / "meta.json"
    meta = {}
    if meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
        except ValueError as e:
            raise fail(str(meta_path), "json", str(e)) from None
    return {"train": read_bin(directory / "train.bin"), "val": read_bin(directory / "val.bin"),
            "meta": meta}


def eot_indices(tokens, eot_id: int, chunk: int = 1 << 24) -> np.ndarray:
    """Positions of every EOT token (int64), read in chunks so a large memmap stays on disk."""
    out = [np.flatnonzero(np.asarray(tokens[i:i + chunk]) == eot_id) + i
           for i in range(0, len(tokens), chunk)]
    return np.concatenate(out).astype(np.int64) if out else np.zeros(0, dtype=np.int64)


def document_bounds(tokens, eot_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of each document, EOT excluded; a trailing document without EOT counts."""
    eots = eot_indices(tokens, eot_id)
    starts = np.concatenate([[0], eots + 1]).astype(np.int64)
    ends = np.concatenate([eots, [len(tokens)]]).astype(np.int64)
    keep = np.ones(len(starts), dtype=bool)
    keep[-1] = ends[-1] > starts[-1]  # nothing after the last EOT: no trailing document
    return starts[keep], ends[keep]


def document_lengths(tokens, eot_id: int) -> np.ndarray:
    """Token count of each document (EOT excluded)."""
    starts, ends = document_bounds(tokens, eot_id)
    return ends - starts


# ---- CS336: .npy token arrays ----
def write_npy(path, tokens, dtype=np.uint16) -> Path:
    from .cache import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, np.asarray(tokens, dtype=dtype), allow_pickle=False)
    return path


def read_npy(path) -> np.ndarray:
    """A CS336 token array: np.load(mmap_mode="r"), checked to be a 1-D integer array."""
    path = Path(path)
    if not path.is_file():
        raise fail(str(path), "file", "no such file (expected a .npy token array)")
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise fail(str(path), "array", f"not a readable .npy file ({e})") from None
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise fail(str(path), "array", f"expected 1-D integer tokens, got {arr.dtype} {arr.shape}")
    return arr


# ---- JSONL records (instruction / E2E style) ----
@dataclass(frozen=True)
class Record:
    prompt: str
    target: str


def read_jsonl(path) -> list[dict]:
    """One JSON object per non-empty line; errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise fail(str(path), "file", "no such file (expected JSON lines)")
    rows = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as e:
                raise fail(f"{path}:{i}", "json", str(e)) from None
            if not isinstance(row, dict):
                raise fail(f"{path}:{i}", "record", f"expected an object, got {type(row).__name__}")
            rows.append(row)
    return rows


def write_jsonl(path, rows) -> Path:
    from .cache import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                       encoding="utf-8")
    return path


_STYLES = [  # (required keys, optional key, how to build (prompt, target))
    (("instruction", "output"), "input"),
    (("meaning_representation", "human_reference"), None),
    (("mr", "ref"), None),
    (("prompt", "completion"), None),
    (("prompt", "target"), None),
]


def to_record(row: dict, where: str = "record") -> Record:
    """Normalize one row: instruction (+ input) -> output, E2E mr -> ref, prompt -> completion."""
    for keys, optional in _STYLES:
        if all(k in row for k in keys):
            values = [row[k] for k in keys] + ([row.get(optional, "")] if optional else [])
            for k, v in zip(keys, values, strict=False):
                if not isinstance(v, str):
                    raise fail(where, k, f"expected a string, got {type(v).__name__}")
            prompt, target = values[0], values[1]
            if optional and row.get(optional):
                prompt = f"{prompt}\n\n{row[optional]}"
            return Record(prompt, target)
    if isinstance(row.get("text"), str):
        return Record("", row["text"])
    styles = "; ".join("+".join(k) for k, _ in _STYLES)
    raise fail(where, "keys", f"{sorted(row)} match no record style ({styles}; or text)")


def read_records(path) -> list[Record]:
    """JSONL instruction/E2E records as (prompt, target) pairs."""
    return [to_record(r, f"{path}:{i + 1}") for i, r in enumerate(read_jsonl(path))]


def synthetic_records(n: int, seed: int = 0) -> list[Record]:
    """E2E-style records from the zoo grammar: a slot list and one sentence that realizes it."""
    from .text import synthetic_documents

    rng = np.random.default_rng([seed, 11])
    docs = synthetic_documents(n, seed=seed, mean_sentences=2.0)
    out = []
    for doc in docs:
        target = doc.split("\n\n", 1)[-1]  # the body, without the title line
        words = [w.strip(".,?!") for w in target.split()]
        picks = rng.choice(len(words), size=min(3, len(words)), replace=False)
        mr = ", ".join(f"slot{j}[{words[i]}]" for j, i in enumerate(sorted(picks.tolist())))
        out.append(Record(mr, target))
    return out
