"""Token streams and the real-data formats the experiments read (`benchlab prepare` writes them).

    python -c "from benchlab.zoo import data; print(data.document_lengths([5, 0, 7, 8, 0], 0))"

- nanoGPT: train.bin / val.bin, a flat uint16 token stream with EOT after every document, read as
  np.memmap; `eot_indices` and `document_lengths` recover the documents (SubLoRA).
- CS336: a .npy integer token array read with np.load(mmap_mode="r") (timing).
- JSONL records: instruction-style {"instruction", "input", "output"}, E2E-style
  {"meaning_representation", "human_reference"}, ... -> (prompt, target) (Long Exposure); the E2E
  NLG challenge's trainset.csv / devset.csv (header `mr,ref`).
- Pre-tokenized JSONL: one document's ids a line, {"input_ids" | "ids" | "tokens": [int]}, or the
  LoRA / Long Exposure artifact's encoded E2E lines {"context": [int], "completion": [int]}
  (microsoft/LoRA examples/NLG/src/gpt2_encode.py); other keys are ignored.
"""

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import fail
from .batches import fixed_batches, random_batch, token_batches  # noqa: F401  (re-exported)
from .cache import atomic_path


# ---- nanoGPT: train.bin / val.bin (uint16 stream, EOT after every document) ----
def write_bin(path, tokens) -> Path:
    """Write a uint16 token stream (nanoGPT layout); atomic, refuses ids >= 65536."""
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


def read_nanogpt(directory, eot_id: int | None = None,
                 explicit: str = "pass the id explicitly") -> dict:
    """{"train", "val": memmaps, "meta": meta.json or {}, "eot_id"} of a `benchlab prepare nanogpt`
    folder. The end-of-text id is `eot_id` when given, else meta.json's, never a guess: neither
    is one BenchlabError naming the folder (`explicit`: how the caller takes the id instead)."""
    directory = Path(directory)
    meta_path = directory / "meta.json"
    meta = {}
    if meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
        except ValueError as e:
            raise fail(str(meta_path), "json", str(e)) from None
        if not isinstance(meta, dict):
            raise fail(str(meta_path), "top level", f"expected an object, got "
                       f"{type(meta).__name__}")
    bins = {"train": read_bin(directory / "train.bin"), "val": read_bin(directory / "val.bin"),
            "meta": meta}
    if eot_id is None:
        if not meta_path.exists():
            raise fail(str(directory), "meta.json", "no such file, so no end-of-text id (write "
                       f"the bins with `benchlab prepare nanogpt`, or {explicit})")
        eot_id = meta.get("eot_id")
        if type(eot_id) is not int or not 0 <= eot_id < 2**16:
            raise fail(str(meta_path), "eot_id",
                       f"{eot_id!r} is not a uint16 token id ({explicit})")
    return {**bins, "eot_id": int(eot_id)}


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


def read_jsonl_lines(path) -> list[tuple[int, dict]]:
    """(line number, JSON object) of every non-empty line; errors name the file and line."""
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
            rows.append((i, row))
    return rows


def read_jsonl(path) -> list[dict]:
    """One JSON object per non-empty line; errors name the file and line."""
    return [row for _, row in read_jsonl_lines(path)]


def write_jsonl(path, rows) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                       encoding="utf-8")
    return path


_STYLES = [  # (required keys: prompt's, target's; optional key appended to the prompt)
    (("instruction", "output"), "input"),
    (("meaning_representation", "human_reference"), None),
    (("mr", "ref"), None),
    (("prompt", "completion"), None),
    (("prompt", "target"), None),
    (("context", "completion"), None),  # the LoRA / Long Exposure artifact's text E2E lines
]


def _style(row: dict):
    """The first (required keys, optional key) of _STYLES whose keys `row` has, or None."""
    return next(((keys, opt) for keys, opt in _STYLES if all(k in row for k in keys)), None)


def to_record(row: dict, where: str = "record") -> Record:
    """Normalize one row: instruction (+ input) -> output, E2E mr -> ref, prompt -> completion."""
    style = _style(row)
    if style is not None:
        keys, optional = style
        for k in keys:
            if not isinstance(row[k], str):
                raise fail(where, k, f"expected a string, got {type(row[k]).__name__}")
        prompt, target = row[keys[0]], row[keys[1]]
        if optional and row.get(optional):
            prompt = f"{prompt}\n\n{row[optional]}"
        return Record(prompt, target)
    if isinstance(row.get("text"), str):
        return Record("", row["text"])
    styles = "; ".join("+".join(k) for k, _ in _STYLES)
    raise fail(where, "keys", f"{sorted(row)} match no record style ({styles}; or text)")


def read_records(path) -> list[Record]:
    """Instruction/E2E records as (prompt, target) pairs: JSONL, or CSV by the .csv suffix."""
    if Path(path).suffix == ".csv":
        return read_csv_records(path)
    return [to_record(r, f"{path}:{i}") for i, r in read_jsonl_lines(path)]


def read_csv_records(path) -> list[Record]:
    """A CSV with a header naming one record style's columns (the E2E challenge's `mr,ref`):
    every row must have all columns and non-empty required fields; errors name file:line (the
    line a row starts on; quoted fields may span lines) and the column."""
    path = Path(path)
    if not path.is_file():
        raise fail(str(path), "file", "no such file (expected a CSV with header mr,ref)")
    out = []
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, strict=True)
        start = 1
        try:
            header = next(reader, None)
            style = _style(dict.fromkeys(header or []))
            if style is None:
                raise fail(f"{path}:1", "header",
                           f"{header or 'none'} names no record style (E2E: mr,ref)")
            start = reader.line_num + 1
            for row in reader:
                where, start = f"{path}:{start}", reader.line_num + 1
                if not row:
                    continue  # a blank line
                if len(row) != len(header):
                    field = header[len(row)] if len(row) < len(header) else "columns"
                    raise fail(where, field, f"{len(row)} fields, the header has {len(header)}")
                rec = dict(zip(header, row, strict=True))
                for k in style[0]:
                    if not rec[k].strip():
                        raise fail(where, k, "empty field")
                out.append(to_record(rec, where))
        except csv.Error as e:
            raise fail(f"{path}:{start}", "csv", str(e)) from None
    return out


TOKEN_KEYS = ("input_ids", "ids", "tokens")  # one document's token ids
PAIR_KEYS = ("context", "completion")  # the artifact's encoded E2E line: context + completion


def is_tokenized(path) -> bool:
    """Whether `path` is pre-tokenized JSONL: its first line has token ids (a list) under
    TOKEN_KEYS or PAIR_KEYS. A .csv, a missing file or bad JSON is not (read_records reports)."""
    path = Path(path)
    if path.suffix == ".csv" or not path.is_file():
        return False
    with open(path, encoding="utf-8") as f:
        line = next((ln for ln in f if ln.strip()), "")
    try:
        row = json.loads(line)
    except ValueError:
        return False
    return isinstance(row, dict) and any(isinstance(row.get(k), list)
                                         for k in TOKEN_KEYS + PAIR_KEYS)


def token_ids(row: dict, where: str, vocab_size: int) -> list[int]:
    """The token ids of one pre-tokenized row, each checked to be an int in [0, vocab_size)."""
    keys = [k for k in TOKEN_KEYS if k in row][:1]
    if not keys and all(k in row for k in PAIR_KEYS):
        keys = list(PAIR_KEYS)
    if not keys:
        raise fail(where, "keys", f"{sorted(row)} hold no token ids (one of "
                   f"{', '.join(TOKEN_KEYS)}; or {'+'.join(PAIR_KEYS)})")
    ids = []
    for k in keys:
        if not isinstance(row[k], list):
            raise fail(where, k, f"expected a list of token ids, got {type(row[k]).__name__}")
        for j, t in enumerate(row[k]):
            if type(t) is not int or not 0 <= t < vocab_size:
                raise fail(where, k, f"item {j}: {t!r} is not a token id in [0, {vocab_size})")
        ids += row[k]
    if not ids:
        raise fail(where, keys[0], "no token ids")
    return ids


def read_token_docs(path, vocab_size: int) -> list[list[int]]:
    """Pre-tokenized JSONL: one document's ids a line (token_ids); errors name file:line."""
    return [token_ids(row, f"{path}:{i}", vocab_size) for i, row in read_jsonl_lines(path)]
