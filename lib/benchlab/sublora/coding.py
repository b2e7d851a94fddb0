"""A real arithmetic coder for the quantized subspace vector, and the whole compressed message.

A 32-bit Witten-Neal-Cleary arithmetic coder with a *static* model: the symbol counts are sent
first, then each symbol is coded with probability count / n, so the code is within 2 bits of
n * H(empirical) (plus the 32-bit ranges' rounding). The message (what the prior pays for):

    counts    levels x W bits   each symbol count as an unsigned int, W = n.bit_length()
    codebook  levels x 16 bits  the centroids as IEEE float16 bit patterns
    side      k x 32 bits       extra real numbers as float32 (the learned gate logits, k of them)
    code      variable          the arithmetic code of the n symbols

The decoder knows n (= d), `levels` and k: hyperparameters, paid by the bound's `extra_bits`. The
message length is len(encode_message(...)); decode_message gives everything back bit for bit.

    python -c "from benchlab.sublora.coding import *; import numpy as np; \
s = np.random.default_rng(0).integers(0, 5, 1000); b = encode(s, symbol_counts(s, 5)); \
print(len(b), (decode(b, symbol_counts(s, 5), 1000) == s).all())"
"""

import bisect
from itertools import accumulate

import numpy as np

PRECISION = 32
FULL = (1 << PRECISION) - 1
HALF = 1 << (PRECISION - 1)
QUARTER = 1 << (PRECISION - 2)
MAX_TOTAL = QUARTER  # the total count must stay below 2^(P-2) so no range collapses to zero
FLOAT_BITS = 16  # codebook centroids are sent as float16
SIDE_BITS = 32   # side values (the learned gate logits) are sent as float32


def symbol_counts(symbols, levels: int) -> np.ndarray:
    """Counts of each symbol 0..levels-1 (int64, length `levels`): the static frequency model."""
    symbols = np.asarray(symbols, dtype=np.int64)
    if symbols.size and (symbols.min() < 0 or symbols.max() >= levels):
        raise ValueError(f"symbols must lie in [0, {levels}); got [{symbols.min()}, "
                         f"{symbols.max()}]")
    return np.bincount(symbols, minlength=levels).astype(np.int64)


def _cumulative(counts) -> list[int]:
    counts = [int(c) for c in counts]
    if any(c < 0 for c in counts):
        raise ValueError("counts must be non-negative")
    cum = [0, *accumulate(counts)]
    if cum[-1] == 0:
        raise ValueError("counts must not all be zero")
    if cum[-1] > MAX_TOTAL:
        raise ValueError(f"total count {cum[-1]} exceeds {MAX_TOTAL} (32-bit coder)")
    return cum


def encode(symbols, counts) -> np.ndarray:
    """Arithmetic-code `symbols` (ints in [0, len(counts))) with probabilities counts/sum(counts)
    as a uint8 array of 0/1 bits; a symbol of count zero cannot be coded (ValueError)."""
    cum = _cumulative(counts)
    total = cum[-1]
    low, high, pending = 0, FULL, 0
    out: list[int] = []

    def emit(bit: int) -> None:
        nonlocal pending
        out.append(bit)
        out.extend([1 - bit] * pending)
        pending = 0

    for s in np.asarray(symbols, dtype=np.int64).tolist():
        if not 0 <= s < len(cum) - 1 or cum[s + 1] == cum[s]:
            raise ValueError(f"symbol {s} has zero probability under the model")
        span = high - low + 1
        high = low + span * cum[s + 1] // total - 1
        low = low + span * cum[s] // total
        while True:
            if high < HALF:
                emit(0)
            elif low >= HALF:
                emit(1)
                low -= HALF
                high -= HALF
            elif low >= QUARTER and high < HALF + QUARTER:
                pending += 1
                low -= QUARTER
                high -= QUARTER
            else:
                break
            low = 2 * low
            high = 2 * high + 1
    # Flush: two more bits (plus pending) pin a value inside [low, high] whatever follows.
    pending += 1
    emit(0 if low < QUARTER else 1)
    return np.asarray(out, dtype=np.uint8)


def decode(bits, counts, n: int) -> np.ndarray:
    """Decode `n` symbols from `bits` (the output of `encode` with the same counts)."""
    cum = _cumulative(counts)
    total = cum[-1]
    bits = np.asarray(bits, dtype=np.uint8).tolist()
    nbits = len(bits)
    pos = 0

    def next_bit() -> int:
        nonlocal pos
        pos += 1
        return bits[pos - 1] if pos <= nbits else 0  # past the end reads zeros

    value = 0
    for _ in range(PRECISION):
        value = 2 * value + next_bit()
    low, high = 0, FULL
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        span = high - low + 1
        scaled = ((value - low + 1) * total - 1) // span
        # The symbol s with cum[s] <= scaled < cum[s+1] (skipping zero-count symbols).
        s = bisect.bisect_right(cum, scaled) - 1
        out[i] = s
        high = low + span * cum[s + 1] // total - 1
        low = low + span * cum[s] // total
        while True:
            if high < HALF:
                pass
            elif low >= HALF:
                low -= HALF
                high -= HALF
                value -= HALF
            elif low >= QUARTER and high < HALF + QUARTER:
                low -= QUARTER
                high -= QUARTER
                value -= QUARTER
            else:
                break
            low = 2 * low
            high = 2 * high + 1
            value = 2 * value + next_bit()
    return out


def ideal_code_bits(symbols, counts) -> float:
    """-sum log2(count[s] / total): the information content the coder approaches (bits)."""
    counts = np.asarray(counts, dtype=np.float64)
    sym = np.asarray(symbols, dtype=np.int64)
    return float(-np.log2(counts[sym] / counts.sum()).sum())


# -- the whole message ---------------------------------------------------------------------------

def count_width(n: int) -> int:
    """Bits per symbol count in the header: counts lie in [0, n], so n.bit_length() bits."""
    return max(1, int(n).bit_length())


def header_bits(n: int, levels: int, n_side: int = 0) -> dict:
    """Bits of the message header: {"counts_bits", "codebook_bits", "side_bits"}."""
    return {"counts_bits": levels * count_width(n), "codebook_bits": levels * FLOAT_BITS,
            "side_bits": n_side * SIDE_BITS}


def _uint_bits(value: int, width: int) -> list[int]:
    return [(value >> (width - 1 - i)) & 1 for i in range(width)]


def _bits_uint(bits) -> int:
    value = 0
    for b in bits:
        value = 2 * value + int(b)
    return value


_FLOATS = {16: (np.float16, np.uint16), 32: (np.float32, np.uint32)}


def float_bits(x, width: int = FLOAT_BITS) -> list[int]:
    """IEEE bit patterns of x rounded to float16 (width 16) or float32 (32), concatenated."""
    ftype, utype = _FLOATS[width]
    patterns = np.asarray(x, dtype=np.float64).astype(ftype).reshape(-1).view(utype).tolist()
    return [b for p in patterns for b in _uint_bits(int(p), width)]


def bits_float(bits, k: int, width: int = FLOAT_BITS) -> np.ndarray:
    """Inverse of `float_bits`: k values (returned as float32)."""
    ftype, utype = _FLOATS[width]
    patterns = [_bits_uint(bits[i * width:(i + 1) * width]) for i in range(k)]
    return np.asarray(patterns, dtype=utype).view(ftype).astype(np.float32)


def encode_message(symbols, codebook, side=()) -> np.ndarray:
    """The full message: counts, float16 codebook (one entry per level), float32 side values,
    arithmetic code (0/1 bits)."""
    symbols = np.asarray(symbols, dtype=np.int64)
    levels = len(codebook)
    counts = symbol_counts(symbols, levels)
    width = count_width(symbols.size)
    head = [b for c in counts.tolist() for b in _uint_bits(int(c), width)]
    head += float_bits(codebook) + float_bits(side, SIDE_BITS)
    return np.concatenate([np.asarray(head, dtype=np.uint8), encode(symbols, counts)])


def decode_message(bits, n: int, levels: int, n_side: int = 0):
    """Inverse of `encode_message`: (symbols, codebook float32, side float32)."""
    bits = np.asarray(bits, dtype=np.uint8)
    width = count_width(n)
    pos = levels * width
    counts = [_bits_uint(bits[i * width:(i + 1) * width]) for i in range(levels)]
    if sum(counts) != n:
        raise ValueError(f"header counts sum to {sum(counts)}, expected n={n}")
    codebook = bits_float(bits[pos:pos + levels * FLOAT_BITS], levels)
    pos += levels * FLOAT_BITS
    side = bits_float(bits[pos:pos + n_side * SIDE_BITS], n_side, SIDE_BITS)
    pos += n_side * SIDE_BITS
    return decode(bits[pos:], counts, n), codebook, side
