"""MLP grain: reordering neurons keeps the function and is judged by brute-force counts.

    pytest tests/long_exposure/test_le_mlp_grain.py -q
"""

import copy

import torch

from benchlab import zoo
from benchlab.long_exposure import exposer as ex
from benchlab.long_exposure import mlp_grain as G


def test_permute_mlp_keeps_the_function():
    model = zoo.build("opt-tiny", seed=0).eval()
    ids = torch.randint(2, zoo.VOCAB_SIZE, (2, 48), generator=torch.Generator().manual_seed(0))
    other = copy.deepcopy(model)
    g = torch.Generator().manual_seed(1)
    for layer in ex.opt_layers(other):
        G.permute_mlp(layer, torch.randperm(layer.fc1.out_features, generator=g))
    with torch.no_grad():
        torch.testing.assert_close(other(ids).logits, model(ids).logits, atol=1e-5, rtol=1e-4)
    assert not torch.equal(ex.opt_layers(other)[0].fc1.weight, ex.opt_layers(model)[0].fc1.weight)


def test_order_and_seq_union_brute_force():
    g = torch.Generator().manual_seed(0)
    act = torch.relu(torch.randn(3, 5, 8, generator=g))
    act[..., 2] = 0  # a neuron that never fires
    rel = 0.3
    top = act.amax(-1, keepdim=True)
    fire = (act > rel * top) & (act > 0)
    counts = [int(fire[b, :, j].any()) for j in range(8) for b in range(3)]
    per = [sum(counts[j * 3:(j + 1) * 3]) for j in range(8)]
    order = G.neuron_order(act, rel).tolist()
    assert order == sorted(range(8), key=lambda j: (-per[j], j))
    for block in (1, 2, 4):
        kept = [[fire[b][:, order][:, i:i + block].any().item() for i in range(0, 8, block)]
                for b in range(3)]
        want = sum(map(sum, kept)) / (3 * 8 // block)
        assert abs(G.seq_union(act, rel, block, torch.tensor(order)) - want) < 1e-6
