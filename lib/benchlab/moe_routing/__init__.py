"""MoE routing: Benjamini-Hochberg vs top-k (and top-p) on OLMoE, with calibrated p-values.

    pytest bench/test_moe_routing.py --bench-store /tmp/moe/store.jsonl --bench-reports /tmp/moe/r
    benchlab moe-routing run --output /tmp/moe_run --max-tokens 16      # the seed's runner
    benchlab moe-routing report /tmp/moe_run/store.jsonl --output /tmp/moe_run
    benchlab moe-routing frontier --output /tmp/moe_frontier   # quality/compute frontier study

Configs are data per scale; the code reads their fields, never the scale name.
"""

import math
from dataclasses import dataclass, replace

from ..core.ratios import Ratio
from .calibration import EmpiricalNull, PooledNull, make_null
from .harness import PROMPTS, Prompt, prompts
from .model import apply_routing, calibrate, collect_stats, grouped_experts
from .nulls import NULLS, NullDef
from .report import report
from .routers import ROUTINGS, Routing, bh_select, naive_pvalues, route, topk_route, topp_route


@dataclass(frozen=True, kw_only=True)
class Config:
    model: str  # zoo spec name
    source: str  # "trained" (zoo.trained) | "random" (zoo.build) | "load" (zoo.load, paper)
    routings: tuple[str, ...]
    prompts_per_category: int
    max_new_tokens: int
    gen_rounds: int  # timed generations per (routing, prompt)
    calib_tokens: int  # N calibration tokens; BH can only select if N + 1 > E / alpha
    heldout_tokens: int
    seq_len: int
    fp16: bool  # bf16 on GPU
    router_tokens: int = 4096
    router_experts: int = 64
    layer_hidden: int = 256
    layer_intermediate: int = 512
    layer_tokens: int = 512
    layer_ks: tuple[int, ...] = (1, 2, 4, 8)
    # BH vs top-k at equal expert count on one random MoE layer per (hidden, intermediate,
    # tokens) (layer_equal_cases): the tiny model's experts and wider ones (OLMoE-1B-7B's are
    # 2048 x 1024: 400M parameters a layer, at small and paper scale)
    equal_count_layers: tuple[tuple[int, int, int], ...] = ((128, 32, 4096), (1024, 512, 1024))
    speed_rounds: int = 5
    # the frontier study (`benchlab moe-routing frontier`) and its tiny-bench slice
    frontier_topk: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8)
    frontier_topp: tuple[float, ...] = (0.02, 0.05, 0.08, 0.1, 0.12, 0.15, 0.2, 0.25, 0.3)
    frontier_alphas: tuple[float, ...] = (0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8,
                                          0.9, 0.95)
    # BH variants: (label, null definition, temperature, renormalized weights)
    frontier_bh: tuple[tuple[str, str, float, bool], ...] = (
        ("bh_per_expert", "per_expert", 1.0, False), ("bh_pooled", "pooled", 1.0, False),
        ("bh_within", "within_token", 1.0, False), ("bh_prob_t2", "prob", 2.0, False),
        ("bh_pooled_renorm", "pooled", 1.0, True))
    frontier_renorm_topk: bool = True  # topk_k_renorm for every k as well
    # the adaptive baseline without BH: the within-token null with one fixed cutoff p <= m / E
    # per layer (routers.threshold_route): m experts per token expected under the null before
    # min_k fills in (so at least ~m + exp(-m)), one rule per m; compared at its actual count
    frontier_thresholds: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0,
                                              4.0, 5.0, 6.0, 7.0)
    frontier_threshold_null: str = "within_token"
    # held-out sequences: the first share chooses each family's parameter, the rest confirm it;
    # the study's held-out tokens (0: heldout_tokens), whole sequences of seq_len
    frontier_selection: float = 0.5
    frontier_heldout_tokens: int = 0
    drift_alpha: float = 0.05  # P(p <= alpha) per layer, null under top-8 vs under the routing
    bootstrap: int = 2000
    slice_rules: tuple[str, ...] = ("topk_1", "topk_2", "bh_pooled@0.4", "bh_per_expert@0.05")


ALL_ROUTINGS = ("topk_8", "bh_strict", "bh_moderate", "bh_loose", "bh_adaptive", "topp_0.4",
                "bh_naive", "bh_pooled", "bh_within", "bh_pooled_renorm", "topk_2_renorm")
# the per-expert null at three alphas (bh_strict, bh_moderate, bh_loose): the alpha sweep
TINY_ROUTINGS = ("topk_8", "bh_strict", "bh_moderate", "bh_loose", "bh_adaptive", "topp_0.4",
                 "bh_naive", "bh_pooled", "bh_within")

CONFIGS = {
    "tiny": Config(model="olmoe-tiny", source="trained", routings=TINY_ROUTINGS,
                   prompts_per_category=2, max_new_tokens=8, gen_rounds=1, calib_tokens=8192,
                   heldout_tokens=4096, seq_len=128, fp16=False, layer_hidden=256,
                   layer_intermediate=256, layer_tokens=2048, speed_rounds=3,
                   frontier_heldout_tokens=16384),
    "small": Config(model="olmoe-small", source="trained", routings=ALL_ROUTINGS,
                    prompts_per_category=3, max_new_tokens=32, gen_rounds=3, calib_tokens=32768,
                    heldout_tokens=4096, seq_len=256, fp16=False, layer_hidden=1024,
                    layer_intermediate=512, layer_tokens=2048, frontier_heldout_tokens=16384,
                    equal_count_layers=((256, 128, 4096), (2048, 1024, 1024))),
    "paper": Config(model="olmoe-1b-7b", source="load", routings=ALL_ROUTINGS,
                    prompts_per_category=3, max_new_tokens=100, gen_rounds=3, calib_tokens=32768,
                    heldout_tokens=8192, seq_len=512, fp16=True, layer_hidden=2048,
                    layer_intermediate=1024, layer_tokens=4096, speed_rounds=10,
                    frontier_heldout_tokens=32768, equal_count_layers=((2048, 1024, 4096),)),
}


@dataclass(frozen=True)
class Case:
    id: str
    kind: str  # generate | router | layer | forward
    routing: str = ""
    prompt: str = ""
    category: str = ""


def generate_cases(config: Config) -> list[Case]:
    """The seed's grid: every routing x every prompt, prompt by prompt: all routings of a prompt
    run back to back, their order rotated by one per prompt, so the paired tests over prompts
    compare routings timed under the same machine state."""
    rs, out = list(config.routings), []
    for i, p in enumerate(prompts(config.prompts_per_category)):
        j = i % len(rs)
        out += [Case(f"{r}-{p.id}", "generate", r, p.id, p.category) for r in rs[j:] + rs[:j]]
    return out


def router_cases(config: Config) -> list[Case]:
    """Every router variant but the top-k baseline itself, at every scale (the router cost is
    timed on Gaussian logits, not the model): each BH alpha (its own ladder, so its own cost),
    each null definition, naive BH, top-p (goal <= 1.5x the top-k router)."""
    return [Case(f"router-{r}", "router", r) for r in ALL_ROUTINGS if r != "topk_8"]


def model_router_cases(config: Config) -> list[Case]:
    """Each BH routing of the config on the model's own held-out router logits, its null
    calibrated under itself, vs the top-8 router on the same logits (goal <= 1.0x)."""
    return [Case(f"model_router-{r}", "model_router", r) for r in config.routings
            if ROUTINGS.get(r).method == "bh"]


def frontier_cases(config: Config) -> list[Case]:
    """A small, fast slice of the frontier study (config.slice_rules) on held-out text."""
    return [Case("frontier-slice", "frontier")]


def forward_cases(config: Config) -> list[Case]:
    """Calibrated BH: the per-expert null at two levels (their mean counts differ; the naive one
    is always 1), the pooled null, whose router ranks only the rows that may keep more than
    one expert (routers.select_over_cuts), and the within-token null, the frontier study's best BH
    variant (its router standardizes every row by its median and MAD first)."""
    keep = ("bh_moderate", "bh_loose", "bh_pooled", "bh_within")
    return [Case(f"forward-{r}", "forward", r) for r in config.routings if r in keep]


def layer_cases(config: Config) -> list[Case]:
    return [Case("layer-scaling", "layer")]


@dataclass(frozen=True)
class LayerCase:
    id: str
    kind: str  # layer_equal
    routing: str
    hidden: int
    intermediate: int
    tokens: int


def layer_equal_cases(config: Config) -> list[LayerCase]:
    """BH (per-expert and pooled nulls) vs top-k at equal expert count on one MoE layer of each
    shape in config.equal_count_layers (goal <= 1.05x, as for the whole forward)."""
    return [LayerCase(f"layer_equal-{r}-h{h}-i{i}-t{t}", "layer_equal", r, h, i, t)
            for r in ("bh_moderate", "bh_pooled") for h, i, t in config.equal_count_layers]


# Result metrics and tolerances for `benchlab compare` (core.compare): 0 exact, a float relative,
# (rel, abs); None for times and speed ratios, which are not results. Expert counts and held-out
# quality come from thresholded float32 compute, so they get a little room across CPU models.
METRICS = {
    "*time*": None, "*_ratio": None, "*_ratio_ci": None, "router_overhead": None,
    "ratio_vs_*": None, "relative_times": None, "tokens_per_second": None,
    "null_digest": None,  # a digest of float32 quantiles: provenance, not a result
    "calib_tokens": 0, "heldout_tokens": 0, "input_tokens": 0, "output_tokens": 0, "tokens": 0,
    "hidden": 0, "intermediate": 0, "ks": 0, "topk_lo": 0, "topk_hi": 0, "generated_text": 0,
    "min_experts": 0, "max_experts": 0,
    "avg_experts": (0.01, 0.01), "heldout_avg_experts": (0.01, 0.01), "std_experts": (0.02, 0.01),
    "mean_experts": (0.01, 0.01), "mean_selected": (0.01, 0.01),
    "heldout_kl": (0.01, 1e-4), "prompt_kl": (0.01, 1e-4), "heldout_ppl": 1e-3,
    "util_cv": (0.02, 1e-3), "util_max_min_ratio": None, "*_util_cv": (0.02, 1e-3),
    "*_active_experts": (0.02, 0.5),
    "heldout_fill_in*": (0.02, 0.01), "fill_in*": (0.02, 0.01), "p_below*": (0.02, 0.002),
    "experts_*": (0.01, 0.01), "kl_*": (0.01, 1e-4), "ppl_*": 1e-3,
}


# Speed ratios tracked across commits (core.ratios; `benchlab compare` gates them): each router
# against softmax + top-8 on the same logits, and the model's forward with BH against top-k at
# equal mean expert count, both timed side by side in rotated rounds with bootstrap intervals.
# Spread seen on this machine kind: the router ratios move by up to 0.2 between runs and CPU
# models, well inside the 0.5 margin; a 2x slower router clears it.
RATIOS = {
    "router_vs_topk8": Ratio("router", "ratio_vs_topk_router", goal=1.5,
                             interval="ratio_vs_topk_router_ci", contender="each router",
                             reference="softmax + top-8 (torch.topk)"),
    # issue 41's goal; shown, not gated, until bench/asv/ratios.py keeps its asv history (a
    # gated ratio needs one: tests/core/test_core_asv.py)
    "model_router_vs_topk8": Ratio("model_router", "model_router_ratio", goal=1.0,
                                   interval="model_router_ratio_ci", gate=False,
                                   contender="each BH router on the model's held-out logits",
                                   reference="softmax + top-8 on the same logits"),
    "forward_pooled_vs_topk": Ratio("forward", "forward_ratio", goal=1.05,
                                    interval="forward_ratio_ci", cases="forward-bh_pooled",
                                    contender="forward with pooled-null BH",
                                    reference="forward with top-k at equal mean expert count"),
    "forward_vs_topk": Ratio("forward", "forward_ratio", interval="forward_ratio_ci",
                             contender="forward with each BH null",
                             reference="forward with top-k at equal mean expert count"),
    "layer_vs_topk": Ratio("layer_equal", "layer_ratio", interval="layer_ratio_ci",
                           contender="one MoE layer with BH", reference="top-k at equal count"),
}


# the kinds that run the config's model
MODEL_KINDS = ("generate", "forward", "frontier", "model_router")


def _loads_weights(case, config) -> bool:
    """Does the case run the config's model from hub weights (source "load": the paper's)?"""
    return config.source == "load" and getattr(case, "kind", None) in MODEL_KINDS


def inputs(case, config) -> dict[str, str]:
    """sha256 of the pinned zoo model, tokenizer and corpus the case runs on; for cases that run
    hub weights also their identity (zoo.weights_identity: another model reruns exactly its own
    cases), "absent" when they are not here (`requires` skips the case then)."""
    from .. import zoo
    from ..core.errors import BenchlabError

    out = zoo.artifact_inputs(config.model)
    if _loads_weights(case, config):
        try:
            out |= zoo.weights_identity(config.model)
        except BenchlabError:
            out[f"weights:{zoo.hub.hub_id_of(config.model)}"] = "absent"
    return out


def requires(case, config) -> str | None:
    """Why `case` cannot run here: it runs hub weights that are not local (offline, no models
    folder entry, not in the HF cache; zoo.resolve's message names the hub id)."""
    from .. import zoo
    from ..core.errors import BenchlabError

    if not _loads_weights(case, config):
        return None
    try:
        zoo.resolve(config.model)
    except BenchlabError as e:
        return str(e)
    return None


# -- the smoke budget ---------------------------------------------------------------------------
SMOKE_SEQ_LEN = 64  # calibration and held-out rows; prompts and generation do not use it
SMOKE_TOKENS = 64  # tokens of the MoE-layer timings (their shapes stay the config's)


def _signature(routing: Routing) -> tuple:
    """What chooses a routing's code path: method, null, temperature, renormalization, caps (not
    k, p or alpha, which only move thresholds)."""
    return (routing.method, routing.null, routing.temperature, routing.renorm, routing.min_k,
            routing.max_k)


def _smoke_routings(routings: tuple) -> tuple:
    """One routing per code path, in the config's order: topk_8 (every comparison's reference),
    then per signature the largest alpha (the fewest calibration tokens for BH to select)."""
    best: dict[tuple, Routing] = {}
    for r in map(ROUTINGS.get, routings):
        key = _signature(r)
        if r.name == "topk_8" or key not in best or (best[key].name != "topk_8"
                                                     and r.alpha > best[key].alpha):
            best[key] = r
    keep = {r.name for r in best.values()}
    return tuple(r for r in routings if r in keep)


def _smoke_calib(config, routings: tuple, rules: tuple, seq_len: int) -> int:
    """The fewest calibration tokens (whole rows) with which every kept BH rule can select an
    expert: N + 1 > E / alpha for the smallest alpha (the per-expert null's smallest p-value is
    1 / (N + 1)); never more than the config's."""
    from .. import zoo
    from .frontier import rule

    experts = zoo.hf_config(config.model).num_experts
    alphas = [r.alpha for r in map(ROUTINGS.get, routings) if r.method == "bh"]
    alphas += [r.alpha for r in (rule(config, n) for n in rules) if r.method == "bh"]
    need = math.floor(experts / min(alphas, default=1.0)) + 1
    return min(config.calib_tokens, seq_len * math.ceil(need / seq_len))


def smoke(config: Config) -> Config:
    """The config's code paths at the least work (`--bench-budget smoke`): one routing per code
    path (_smoke_routings) on one prompt per category (the fewest the grid allows), 2 new tokens
    (prefill and one cached decode step) in one timed round, 64-token rows, held-out text of one
    row, the fewest calibration tokens that let BH select, one rule per frontier family, the
    MoE-layer timings at their shapes on 64 tokens with the fewest and most experts, and one
    speed round (3, 6 and 10 rotated rounds in the side-by-side ratios)."""
    from .frontier import family, rule

    seq_len = min(config.seq_len, SMOKE_SEQ_LEN)
    routings = _smoke_routings(config.routings)
    families: dict[str, str] = {}
    for name in config.slice_rules:
        families.setdefault(family(rule(config, name)), name)
    rules = tuple(families.values())
    ks = sorted(config.layer_ks)
    return replace(
        config, routings=routings, prompts_per_category=1,
        max_new_tokens=min(config.max_new_tokens, 2), gen_rounds=1, seq_len=seq_len,
        calib_tokens=_smoke_calib(config, routings, rules, seq_len),
        heldout_tokens=min(config.heldout_tokens, seq_len),
        router_tokens=min(config.router_tokens, 256), layer_tokens=min(config.layer_tokens,
                                                                       SMOKE_TOKENS),
        layer_ks=(ks[0], ks[-1]) if len(ks) > 1 else tuple(ks),
        equal_count_layers=tuple((h, i, min(t, SMOKE_TOKENS))
                                 for h, i, t in config.equal_count_layers),
        speed_rounds=1, slice_rules=rules)


__all__ = [
    "METRICS", "RATIOS", "inputs", "requires", "smoke", "CONFIGS", "Config", "Case",
    "generate_cases", "router_cases", "model_router_cases",
    "forward_cases", "layer_cases", "layer_equal_cases", "frontier_cases", "report", "NULLS",
    "NullDef", "PooledNull",
    "make_null", "bh_select", "naive_pvalues", "route",
    "topk_route", "topp_route", "ROUTINGS", "Routing", "EmpiricalNull", "apply_routing",
    "calibrate", "collect_stats", "grouped_experts", "PROMPTS", "Prompt", "prompts",
]


def needs(case, config) -> dict:
    """What `case` needs (core.plan, `benchlab plan`): the config's model for the kinds that run
    it (hub weights under source "load", else a zoo spec) and the tokens it runs: calibration
    (counted per case: an upper bound) plus prompts and generation (prompts ~64 tokens), the
    held-out rows of the side-by-side forwards, or of each frontier rule; inference only."""
    kind = getattr(case, "kind", None)
    if kind not in MODEL_KINDS:
        return {}
    tokens = {"generate": (64 + config.max_new_tokens) * config.gen_rounds,
              "forward": 2 * config.heldout_tokens * config.speed_rounds,
              "model_router": config.heldout_tokens,
              "frontier": config.heldout_tokens * len(config.slice_rules)}[kind]
    return {"models" if config.source == "load" else "shapes": [config.model],
            "tokens": tokens + config.calib_tokens, "train": False}
