"""The arithmetic coder: exact round trips and code lengths at the empirical entropy."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import entropy

from benchlab.sublora import coding


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=1, max_size=400), st.integers(0, 4))
def test_round_trip_empirical_model(symbols, unused_levels):
    levels = 7 + unused_levels  # extra zero-count symbols in the model must not break decoding
    counts = coding.symbol_counts(symbols, levels)
    bits = coding.encode(symbols, counts)
    assert np.array_equal(coding.decode(bits, counts, len(symbols)), symbols)
    ideal = len(symbols) * entropy(counts, base=2)  # scipy: n * H(empirical) in bits
    assert ideal - 1e-9 <= len(bits) <= ideal + 2 + 1e-6 * len(symbols)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 1000), min_size=2, max_size=12), st.integers(0, 2**31 - 1))
def test_round_trip_any_positive_model(counts, seed):
    """The model need not be the empirical one: any positive counts code any sequence."""
    rng = np.random.default_rng(seed)
    symbols = rng.integers(0, len(counts), size=int(rng.integers(1, 300)))
    bits = coding.encode(symbols, counts)
    assert np.array_equal(coding.decode(bits, counts, symbols.size), symbols)
    ideal = coding.ideal_code_bits(symbols, counts)
    assert len(bits) <= ideal + 2 + 1e-6 * symbols.size


def test_length_near_entropy_at_scale():
    rng = np.random.default_rng(0)
    p = np.array([0.02, 0.08, 0.4, 0.4, 0.08, 0.02])
    symbols = rng.choice(6, size=20_000, p=p)
    counts = coding.symbol_counts(symbols, 6)
    bits = coding.encode(symbols, counts)
    ideal = symbols.size * entropy(counts, base=2)
    assert 0 <= len(bits) - ideal <= 3
    assert np.array_equal(coding.decode(bits, counts, symbols.size), symbols)


def test_degenerate_inputs():
    one = coding.encode([3, 3, 3], [0, 0, 0, 5])  # probability 1: only the 2 flush bits
    assert len(one) == 2
    assert coding.decode(one, [0, 0, 0, 5], 3).tolist() == [3, 3, 3]
    with pytest.raises(ValueError, match="zero probability"):
        coding.encode([0, 1], [1, 0])
    with pytest.raises(ValueError, match="all be zero"):
        coding.encode([0], [0, 0])
    with pytest.raises(ValueError, match="must lie in"):
        coding.symbol_counts([0, 5], 3)


def test_message_round_trip_and_length():
    rng = np.random.default_rng(1)
    codebook = np.array([-0.031, -0.0102, 0.0, 0.0099, 0.0302], dtype=np.float32)
    symbols = rng.integers(0, 5, 777)
    side = np.array([0.25, -1.5, 3.0e-5], dtype=np.float32)
    bits = coding.encode_message(symbols, codebook, side)
    got_symbols, got_codebook, got_side = coding.decode_message(bits, 777, 5, 3)
    assert np.array_equal(got_symbols, symbols)
    assert np.array_equal(got_codebook, codebook.astype(np.float16).astype(np.float32))
    assert np.array_equal(got_side, side)  # float32 side values travel exactly
    head = coding.header_bits(777, 5, 3)
    assert head == {"counts_bits": 5 * 10, "codebook_bits": 5 * 16, "side_bits": 3 * 32}
    code = coding.encode(symbols, coding.symbol_counts(symbols, 5))
    assert bits.size == sum(head.values()) + code.size
    with pytest.raises(ValueError, match="expected n=778"):
        coding.decode_message(bits, 778, 5, 3)


def test_float_bits_round_trip():
    x = np.array([0.0, -0.0, 1.0, -2.5, 65504.0, 1e-7], dtype=np.float32)
    for width in (16, 32):
        back = coding.bits_float(coding.float_bits(x, width), x.size, width)
        expect = x.astype(np.float16).astype(np.float32) if width == 16 else x
        assert np.array_equal(back.view(np.uint32), expect.view(np.uint32))  # sign of -0 too
