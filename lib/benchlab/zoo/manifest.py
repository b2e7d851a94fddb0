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
    """MANIFEST.json: {"files": {name: {"sha256", "bytes"}}, "training": {...}}, else a
    one-line BenchlabError naming it."""
    try:
        data = json.loads(MANIFEST.read_text())
    except (OSError, ValueError) as e:
        raise BenchlabError(f"{MANIFEST}: cannot read the zoo manifest ({e})") from None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict) or not all(
            isinstance(e, dict) and isinstance(e.get("sha256"), str)
            and type(e.get("bytes")) is int for e in files.values()):
        raise BenchlabError(f"{MANIFEST}: files: expected {{name: {{sha256, bytes}}}}")
    return data


def verify() -> list[Path]:
    """Every artifact the zoo ships (the corpus, the tokenizer, each tiny model) listed in the
    manifest, every file in the folder listed, and each one's size and sha256 equal to its
    entry; the verified paths, else a one-line BenchlabError naming the first file at fault."""
    listed = manifest()["files"]
    for name in (CORPUS, TOKENIZER, *MODELS):
        if file_name(name) not in listed:
            raise BenchlabError(f"{MANIFEST}: files: lacks {file_name(name)!r} (restore the "
                                "manifest from git, or run `benchlab zoo pin`)")
    for f in sorted(ARTIFACTS.iterdir()):
        if f.name != MANIFEST.name and not f.name.startswith(".") and f.name not in listed:
            raise BenchlabError(f"{f}: not listed in {MANIFEST.name} (an unpinned artifact)")
    return [path(fname.removesuffix(".safetensors")) for fname in sorted(listed)]


def file_name(name: str) -> str:
    """An artifact's file name: models by spec name, the corpus and tokenizer by file name."""
    return f"{name}.safetensors" if name in MODELS else name


def is_pinned(name: str) -> bool:
    return file_name(name) in manifest()["files"]


def _entry(name: str) -> dict:
    entry = manifest()["files"].get(file_name(name))
    if entry is None:
        raise BenchlabError(f"{MANIFEST}: files: no pinned artifact {file_name(name)!r}")
    return entry


def digest(name: str) -> str:
    """The sha256 of a pinned artifact (a model spec name, CORPUS or TOKENIZER), from the
    manifest: cheap, and what records carry as their inputs."""
    return _entry(name)["sha256"]


@functools.cache
def path(name: str) -> Path:
    """The verified path of a pinned artifact: size and sha256 equal the manifest's, else a
    one-line BenchlabError naming the file."""
    entry, target = _entry(name), ARTIFACTS / file_name(name)
    if not target.is_file():
        raise BenchlabError(f"{target}: pinned zoo artifact missing (run `benchlab zoo pin`)")
    if target.stat().st_size != entry["bytes"] or sha256_file(target) != entry["sha256"]:
        raise BenchlabError(f"{target}: sha256 differs from {MANIFEST.name} (a corrupted or "
                            "edited artifact; restore it from git or run `benchlab zoo pin`)")
    return target


def write_manifest(stats: dict) -> None:
    files = {f.name: {"sha256": sha256_file(f), "bytes": f.stat().st_size}
             for f in sorted(ARTIFACTS.iterdir())
             if f.name != MANIFEST.name and f.is_file() and not f.name.startswith(".")}
    MANIFEST.write_text(json.dumps({"files": files, "training": stats}, indent=1,
                                   sort_keys=True) + "\n")
    manifest.cache_clear()
    path.cache_clear()
