"""The identity of a model's weights and tokenizer, for records' `inputs` (the resume key): the
same hub id can hold other weights (a revision, a fine-tuned copy, random paper-shaped ones).

    BENCHLAB_MODELS=DIR python -c "from benchlab import zoo; print(zoo.weights_identity('gpt2'))"

A local folder: sha256 over its weight files and over its tokenizer files, each file hashed once
per (path, size, mtime) (core.provenance.file_digest). A hub snapshot in the HF cache: its commit.
"""

import hashlib
import os
from pathlib import Path

from ..core.errors import BenchlabError, first_line
from ..core.provenance import file_digest
from .hub import _offline, cached_snapshot, hub_id_of, resolve, tokenizer_files, weight_files


def files_digest(files) -> str:
    """sha256 over the (name, sha256) list of `files`, in the order given (callers sort)."""
    h = hashlib.sha256()
    for f in files:
        h.update(f"{Path(f).name}\0{file_digest(f)}\n".encode())
    return h.hexdigest()


def _label(name_or_dir) -> str:
    """The hub id a record names: a spec's hub id, a raw hub id, or a folder's name read back from
    the models-folder layout (`facebook--opt-125m` -> `facebook/opt-125m`)."""
    path = Path(os.fspath(name_or_dir)).expanduser()
    if path.is_dir():
        return path.resolve().name.replace("--", "/")
    return hub_id_of(name_or_dir)


def _hub_commit(hub_id: str) -> str:
    snapshot = cached_snapshot(hub_id)
    if snapshot is not None:
        return snapshot.name  # snapshots/<commit>/
    if _offline():  # resolve() raised already; kept for direct calls
        raise BenchlabError(f"{hub_id}: not in the HF cache and offline: no weights identity")
    try:
        from huggingface_hub import HfApi

        info = HfApi().model_info(hub_id, token=os.environ.get("HF_TOKEN") or None)
    except Exception as e:  # network, auth, not found: all bad input here
        raise BenchlabError(f"{hub_id}: cannot read the hub's commit ({first_line(e)[:160]})"
                            ) from None
    return info.sha


def weights_identity(name_or_dir, models_dir=None) -> dict[str, str]:
    """{"weights:<hub id>": sha256, "tokenizer:<hub id>": sha256} of what `zoo.load` would read:
    a local folder's files (no tokenizer key without tokenizer files), else both the commit of
    the hub id's HF cache snapshot (online and not cached: the hub's current commit)."""
    label = _label(name_or_dir)
    where = resolve(name_or_dir, models_dir)
    folder = Path(where)
    if not folder.is_dir():
        commit = _hub_commit(where)
        return {f"weights:{label}": commit, f"tokenizer:{label}": commit}
    weights, tokenizer = weight_files(folder), tokenizer_files(folder)
    if not weights:
        raise BenchlabError(f"{folder}: weights: no *.safetensors or *.bin files")
    out = {f"weights:{label}": files_digest(weights)}
    if tokenizer:
        out[f"tokenizer:{label}"] = files_digest(tokenizer)
    return out
