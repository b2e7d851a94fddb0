"""Long Exposure's patched layers against transformers' own OPT and GPT-2 on paper-shaped weights:
the published configs of opt-350m (post-norm, 512-wide embeddings projected in and out),
opt-1.3b and gpt2-large, cut to one layer, random weights, float32. A packed row of four
documents through the patched model (LE with every block kept, and the dense document-masked
SDPA baseline) gives, document by document, the logits of the unpatched model run on that
document alone at the same positions.

    pytest tests/long_exposure/test_le_paper_shapes.py -q -p no:cacheprovider
"""

import pytest
import torch
import transformers

from benchlab.long_exposure import patch as P
from benchlab.zoo import paper

L = 96
ENDS = (30, 51, 77)
SPANS = list(zip((0, 31, 52, 78), (31, 52, 78, L), strict=True))
TOL = 2e-5  # float32, logits O(1): the three models differ from HF by <= 3e-6 here


@pytest.fixture(scope="module", params=("opt-350m", "opt-1.3b", "gpt2-large"))
def model(request):
    config = paper.paper_config(request.param, layers=1)
    torch.manual_seed(0)
    m = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    return m.float().eval()


def packed_row(config):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(4, min(config.vocab_size, 50000), (1, L), generator=g)
    ids[:, list(ENDS)] = config.eos_token_id
    return ids


@pytest.mark.parametrize("mode", ("le_keepall", "sdpa_docs"))
def test_patched_documents_equal_transformers_run_alone(model, mode):
    cfg = model.config
    ids = packed_row(cfg)
    with torch.no_grad():
        refs = [model(input_ids=ids[:, s:e], position_ids=torch.arange(s, e)[None]).logits
                for s, e in SPANS]
        heads = getattr(cfg, "n_head", None) or cfg.num_attention_heads
        ffn = getattr(cfg, "ffn_dim", None) or cfg.n_inner or 4 * cfg.n_embd
        stats = (P.patch(model, P.KeepAll(heads, ffn, 64)) if mode == "le_keepall"
                 else P.patch(model, None, attn="sdpa_docs"))
        try:
            out = model(input_ids=ids).logits
        finally:
            P.unpatch(model)
    worst = max((out[:, s:e] - ref).abs().max().item()
                for (s, e), ref in zip(SPANS, refs, strict=True))
    print(f"{cfg.model_type} d={cfg.hidden_size} {mode}: max |diff| {worst:.1e}")
    for (s, e), ref in zip(SPANS, refs, strict=True):
        torch.testing.assert_close(out[:, s:e], ref, atol=TOL, rtol=0)
    if mode == "le_keepall":
        assert stats.keeps_everything()

