"""The zoo: every model and every text the experiments use, offline by default, hub-ready at paper.

    python -c "from benchlab import zoo; print(list(zoo.MODELS))"
    python -c "from benchlab import zoo; m = zoo.trained('opt-tiny'); print(m.config)"

Modules (each documents its own functions):
    specs, models   MODELS, spec, names(scale), hf_config, build(name, seed): the named specs per
                    scale (tiny | small | paper) and their random-init models
    hub, identity   load, load_tokenizer, resolve: a local folder, $BENCHLAB_MODELS/<org>--<name>/,
                    else the hub or its cache (HF_HUB_OFFLINE=1 and no local copy: a one-line
                    error); offline(), any_tokenizer; weights_identity for records' inputs
    paper           `benchlab zoo paper-shapes DIR [--layers N]`: random paper-shaped models
    train, cache    trained(name, steps, seed): tiny/small specs briefly trained on the zoo corpus,
                    cached under cache_dir() keyed by zoo_version(); train_stats, TrainConfig
    text, tokenize  pydoc_text, pydoc_documents, synthetic_documents, length_stats,
                    corpus_documents; tokenizer("bpe" | "byte"), encode_documents, corpus_tokens,
                    VOCAB_SIZE, EOT_ID, PAD_ID (the zoo BPE of the tiny/small specs)
    manifest, pin   the shipped corpus, BPE and tiny models, sha256-checked: digest(name);
                    artifact_inputs(*models) (zoo.models) names them in records' inputs
    probes          val_loss, router_entropy, relu_sparsity, summary
    data, batches   token batches and the real-data formats (nanoGPT .bin, CS336 .npy, JSONL and
                    E2E CSV records, pre-tokenized JSONL); `benchlab prepare` (zoo.cli) writes them
"""

from .cache import cache_dir, zoo_version
from .hub import any_tokenizer, load, load_tokenizer, offline, resolve
from .identity import weights_identity
from .manifest import digest
from .models import artifact_inputs, build, hf_config, names, spec
from .specs import MODELS, ModelSpec
from .text import corpus_documents, length_stats, pydoc_documents, pydoc_text, synthetic_documents
from .tokenize import EOT_ID, PAD_ID, VOCAB_SIZE, corpus_tokens, encode_documents, tokenizer
from .train import TrainConfig, train_stats, trained

__all__ = ["EOT_ID", "MODELS", "PAD_ID", "VOCAB_SIZE", "ModelSpec", "build", "hf_config", "load",
           "names", "offline", "spec", "resolve", "load_tokenizer", "weights_identity", "cache_dir",
           "zoo_version", "corpus_documents", "length_stats", "pydoc_documents", "pydoc_text",
           "synthetic_documents", "any_tokenizer", "corpus_tokens", "encode_documents", "tokenizer",
           "digest", "artifact_inputs", "TrainConfig", "train_stats", "trained"]
