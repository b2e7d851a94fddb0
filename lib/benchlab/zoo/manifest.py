"""The zoo's pinned artifacts, as shipped: MANIFEST.json and the sha256-checked paths.

    benchlab zoo verify          # check every shipped artifact against MANIFEST.json

Every machine uses these bytes, so a tiny-scale result does not depend on the CPU that trained
the model (AMD and Intel kernels round differently, and training amplifies it). Each file is
checked by sha256 against MANIFEST.json on first use; a mismatch is a one-line BenchlabError
naming it. The builder that writes them is zoo.pin (`benchlab zoo pin`); this module imports no
other zoo module, so everything in the zoo can read the manifest.
"""

import functools
import json
from pathlib import Path

from ..core.errors import BenchlabError
from ..core.provenance import sha256_file

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


def write_manifest(stats: dict) -> None:
    files = {}
    for f in sorted(ARTIFACTS.iterdir()):
        if f.name != MANIFEST.name and f.is_file() and not f.name.startswith("."):
            files[f.name] = {"sha256": sha256_file(f), "bytes": f.stat().st_size}
    MANIFEST.write_text(json.dumps({"files": files, "training": stats}, indent=1,
                                   sort_keys=True) + "\n")
    manifest.cache_clear()
    path.cache_clear()
