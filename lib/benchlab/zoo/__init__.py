"""The zoo: every model and every text the experiments use, offline by default, hub-ready at paper.

    python -c "from benchlab import zoo; print(list(zoo.MODELS))"
    python -c "from benchlab import zoo; m = zoo.trained('opt-tiny'); print(m.config)"

Models (benchlab.zoo.specs: the specs, data outside every code version; zoo.models; zoo.hub)
    MODELS                      Registry of ModelSpec ("did you mean" on typos)
    spec(name) -> ModelSpec     name, family (opt|olmoe|llama|gpt2), config (transformers kwargs),
                                hub_id (paper specs) or None, scale (tiny|small|paper)
    names(scale=None)           spec names, optionally of one scale
    hf_config(name)             the transformers config object of a spec
    build(name, seed=0)         random init, float32, eval(); any spec (paper specs in real shape)
    load(name_or_dir, *, dtype=None, device="cpu", models_dir=None)      (zoo.hub)
                                local save_pretrained directory, paper spec (hub id, HF_TOKEN), or a
                                raw hub id, through resolve(); a tiny/small spec gives
                                trained(name). Offline (HF_HUB_OFFLINE=1) without a local copy:
                                one-line BenchlabError naming the hub id and the folder expected.
    resolve(name_or_hub_id, models_dir=None) -> str     a local folder or the hub id: the models
                                folder (argument, else $BENCHLAB_MODELS) holds DIR/<org>--<name>/
                                (save_pretrained model + tokenizer; checked: model_type, published
                                shapes except the number of layers, tokenizer files)
    load_tokenizer(name_or_dir, models_dir=None)        the transformers tokenizer, through resolve
    weights_identity(name_or_dir, models_dir=None)      {"weights:<hub id>": sha256 of the weight
                                files (or the HF cache snapshot's commit), "tokenizer:<hub id>":
                                ...} for records' inputs (zoo.identity); cheap to call repeatedly
    `benchlab zoo paper-shapes DIR [--layers N]`        random-weight models of every paper spec in
                                that layout, with tokenizers of the published vocab (zoo.paper)
    offline()                   context manager forcing offline hub access (tests)
    VOCAB_SIZE, EOT_ID, PAD_ID  the zoo BPE vocabulary that tiny/small specs use (4096, 0, 1)
Trained models (benchlab.zoo.train)
    trained(name, *, steps=None, seed=0)   briefly trained on the zoo corpus (CPU, <= ~1 min),
                                cached as safetensors under cache_dir() keyed by spec + steps +
                                seed + zoo code version; corrupted files are rebuilt
    cache_dir()                 $BENCHLAB_CACHE or ~/.cache/benchlab
    zoo_version()               hash of the zoo's own source files (cache key)
    train_stats(name, ...)      the JSON sidecar of a cached model: losses before/after, steps, time
Text (benchlab.zoo.text, benchlab.zoo.tokenize)
    pydoc_text() / pydoc_documents()   CPython's pydoc_data.topics prose (~0.5 MB)
    synthetic_documents(n, seed=0)     seeded Zipfian-grammar documents of varied length
    length_stats(documents)            document-length distribution (words, chars)
    corpus_documents(split)            the zoo training corpus: "train" | "val"
    tokenizer(kind="bpe")              .encode/.encode_batch/.decode/.vocab_size/.eot_id/.pad_id
                                       ("bpe": 4096-token byte-level BPE trained on the corpus,
                                       cached, .to_transformers(); "byte": bytes, EOT 256, PAD 257)
    any_tokenizer(name_or_dir)         a zoo kind, else a hub id / folder (load_tokenizer) with
                                       the same interface, its eos as eot_id (tokenize.HFTokenizer)
    encode_documents(docs, kind)       one uint16 stream, EOT after each document (kind: a zoo
                                       kind or a tokenizer object)
    corpus_tokens(split)               the corpus split as that stream (cached .npy)
Pinned artifacts (benchlab.zoo.manifest; built by benchlab.zoo.pin): the corpus, the BPE and the
    default-schedule tiny models are shipped files checked by sha256; digest(name) -> sha256 of
    one ("opt-tiny", manifest.TOKENIZER, manifest.CORPUS); artifact_inputs(*models) ->
    {"spec:<name>", "model:<name>", "tokenizer", "corpus"} for records (spec: the hash of the
    model's spec; model: its pinned weights)
Probes (benchlab.zoo.probes): val_loss(model, batches), router_entropy(model, ids),
    relu_sparsity(model, ids), summary(model)
Data (benchlab.zoo.data)
    random_batch(tokens, B, T, seed=|rng=) -> (B, T+1) int64; fixed_batches(...); token_batches(...)
    nanoGPT: write_bin, read_bin (uint16 memmap), read_nanogpt(dir, eot_id=None) -> {"train",
             "val","meta","eot_id"} (eot_id: given, else meta.json's; neither: an error),
             eot_indices(tokens, eot_id), document_bounds(...), document_lengths(...)
    CS336:   write_npy, read_npy (np.load(mmap_mode="r"), 1-D integer check)
    JSONL:   read_jsonl, write_jsonl, read_records(path) -> [Record(prompt, target)] for
             instruction (+input) / E2E (meaning_representation, human_reference | mr, ref) /
             prompt+completion / text rows; synthetic_records(n, seed) offline E2E-style records
`benchlab prepare ...` = benchlab.zoo.cli.main(argv): local text/JSONL -> these formats.
"""

from .cache import cache_dir, zoo_version
from .hub import any_tokenizer, load, load_tokenizer, offline, resolve
from .identity import weights_identity
from .manifest import digest
from .models import artifact_inputs, build, hf_config, names, spec
from .specs import MODELS, ModelSpec
from .text import (
    corpus_documents,
    length_stats,
    pydoc_documents,
    pydoc_text,
    synthetic_documents,
)
from .tokenize import (
    EOT_ID,
    PAD_ID,
    VOCAB_SIZE,
    corpus_tokens,
    encode_documents,
    tokenizer,
)
from .train import TrainConfig, train_stats, trained

__all__ = [
    "EOT_ID", "MODELS", "PAD_ID", "VOCAB_SIZE", "ModelSpec", "build", "hf_config", "load",
    "names", "offline", "spec", "resolve", "load_tokenizer", "weights_identity", "cache_dir",
    "zoo_version",
    "corpus_documents", "length_stats", "pydoc_documents", "pydoc_text", "synthetic_documents",
    "any_tokenizer", "corpus_tokens", "encode_documents", "tokenizer", "digest", "artifact_inputs",
    "TrainConfig", "train_stats", "trained",
]
