"""Tokenizers of the tiny/small specs: byte-level, and a byte-level BPE trained on the zoo corpus.

    python -c "from benchlab import zoo; print(zoo.tokenizer().encode('def f(x): return x'))"

The BPE (4096 tokens: <|endoftext|> = 0, <|pad|> = 1, 256 byte symbols, merges) was trained with
the `tokenizers` library on the pinned corpus and is shipped as a pinned artifact (zoo.manifest).
"""

import functools

import numpy as np

from ..core.errors import BenchlabError
from . import manifest
from .cache import atomic_path, cache_dir, locked
from .text import corpus_documents

# The zoo BPE's layout: id 0 ends a document, id 1 pads (tiny and small specs use it).
VOCAB_SIZE = 4096
EOT_ID = 0
PAD_ID = 1
SPECIALS = ["<|endoftext|>", "<|pad|>"]  # ids 0 and 1 (EOT_ID, PAD_ID)


class ByteTokenizer:
    """UTF-8 bytes 0..255, then EOT = 256 and PAD = 257."""

    kind = "byte"
    vocab_size = 258
    eot_id = 256
    pad_id = 257

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def decode(self, ids) -> str:
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")


class BPETokenizer:
    """A `tokenizers.Tokenizer` with the same small interface as ByteTokenizer."""

    kind = "bpe"
    eot_id = EOT_ID
    pad_id = PAD_ID

    def __init__(self, tok):
        self.tok = tok
        self.vocab_size = tok.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tok.encode_batch(texts)]

    def decode(self, ids) -> str:
        return self.tok.decode(list(ids))

    def to_transformers(self):
        """A transformers PreTrainedTokenizerFast over the same tokenizer (for HF pipelines)."""
        from transformers import PreTrainedTokenizerFast

        return PreTrainedTokenizerFast(tokenizer_object=self.tok, eos_token=SPECIALS[0],
                                       bos_token=SPECIALS[0], pad_token=SPECIALS[1])


def _train_bpe(vocab_size: int = VOCAB_SIZE, specials: list[str] = SPECIALS):
    """A byte-level BPE trained on the zoo corpus's train split (the pinned one by default)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus_documents("train"), trainer=trainer)
    return tok


@functools.cache
def _bpe() -> BPETokenizer:
    from tokenizers import Tokenizer

    path = manifest.path(manifest.TOKENIZER)
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as e:  # tokenizers raises a bare Exception on a malformed file
        raise BenchlabError(f"{path}: not a tokenizers JSON file ({e})") from None
    if tok.get_vocab_size() != VOCAB_SIZE:
        raise BenchlabError(f"{path}: vocab size: {tok.get_vocab_size()}, expected {VOCAB_SIZE}")
    return BPETokenizer(tok)


def reset() -> None:
    """Forget the loaded tokenizer (after `benchlab zoo pin` rewrote it)."""
    _bpe.cache_clear()


def tokenizer(kind: str = "bpe"):
    """The zoo tokenizer: "bpe" (the pinned 4096-token BPE the tiny/small specs use) or "byte"."""
    if kind == "byte":
        return ByteTokenizer()
    if kind == "bpe":
        return _bpe()
    raise BenchlabError(f"tokenizer kind {kind!r}: expected 'bpe' or 'byte'")


class HFTokenizer:
    """A transformers tokenizer with the zoo tokenizers' small interface: its eos token ends a
    document (eot_id); `kind` is the name or folder it was loaded from."""

    def __init__(self, tok, name: str):
        if tok.eos_token_id is None:
            raise BenchlabError(f"{name}: tokenizer: no eos token (the end-of-text id a token "
                                "stream puts after every document)")
        self.tok, self.kind = tok, str(name)
        self.vocab_size = len(tok)  # added tokens included: every id is below it
        self.eot_id = int(tok.eos_token_id)
        self.pad_id = self.eot_id if tok.pad_token_id is None else int(tok.pad_token_id)

    def encode(self, text: str) -> list[int]:
        return self.encode_batch([text])[0]

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        return self.tok(list(texts), add_special_tokens=False, verbose=False)["input_ids"]

    def decode(self, ids) -> str:
        return self.tok.decode(list(ids), clean_up_tokenization_spaces=False)


def encode_documents(documents: list[str], kind="bpe") -> np.ndarray:
    """One uint16 token stream: each document's tokens followed by EOT (nanoGPT layout). `kind`:
    a zoo tokenizer kind or a tokenizer object (HFTokenizer); an id over 65535 is an error."""
    tok = tokenizer(kind) if isinstance(kind, str) else kind
    parts = [np.asarray([*ids, tok.eot_id], dtype=np.int64) for ids in tok.encode_batch(documents)]
    stream = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    if stream.size and (stream.min() < 0 or stream.max() >= 2**16):
        raise BenchlabError(f"tokenizer {tok.kind}: ids [{stream.min()}, {stream.max()}] do not "
                            "fit uint16")
    return stream.astype(np.uint16)


def corpus_tokens(split: str = "train") -> np.ndarray:
    """The zoo corpus split as one BPE token stream (uint16, EOT after each document), cached."""
    key = manifest.digest(manifest.TOKENIZER)[:12] + manifest.digest(manifest.CORPUS)[:12]
    path = cache_dir() / "zoo" / f"corpus-{split}-{key}.npy"
    with locked(path):
        if path.exists():
            try:
                return np.load(path, allow_pickle=False)
            except (ValueError, OSError, EOFError):
                path.unlink()  # torn file: rebuild
        tokens = encode_documents(corpus_documents(split))
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, tokens, allow_pickle=False)
    return tokens
