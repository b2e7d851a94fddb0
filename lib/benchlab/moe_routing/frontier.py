"""The quality/compute frontier on held-out text: every rule, its experts and its quality cost.

    benchlab moe-routing frontier --output runs/moe_frontier --report reports/moe_routing/frontier

Rules (config.frontier_*): topk_1..8 (and renormalized), top-p over a grid of p, and each BH
variant (a null definition, temperature, renormalization) over a grid of alpha, every BH rule with
its own null calibrated under itself (model.calibrate). Per rule and held-out token: KL from
topk_8, NLL, experts per token (mean over layers), kept in OUT/points/<rule>.npz (atomic, keyed by
model digest and rule: a rerun resumes). Beside BH, the adaptive baseline without BH: the same
within-token null with one fixed cutoff aimed at m experts per token (thr_within@m).

The statistics are over held-out sequences (tokens of one sequence are not independent): a
seeded random config.frontier_selection share of the sequences (the selection split) chooses
each family's parameter; the rest (the confirmation split) tests it. At equal mean expert count each
rule is compared with top-k interpolated linearly between the two top-k points around its count,
token by token (the figure draws top-k the same way): per-sequence mean KL and NLL differences,
core.stats.compare_paired over sequences, Holm over the tests of one table (stats.family).
P(p <= alpha) per layer is shown for nulls calibrated under top-8 ("before") and under the
routing itself ("after").
"""

import hashlib
import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..core import stats
from ..core.errors import BenchlabError
from ..core.store import atomic_path
from .routers import Routing

TOPK_FAMILY = "topk"
THRESHOLD_PREFIX = "thr_"  # the non-BH adaptive family: thr_within@m, m experts aimed at


def rules(config) -> list[Routing]:
    out = [Routing(f"topk_{k}", "topk", k=k) for k in config.frontier_topk]
    if config.frontier_renorm_topk:
        out += [Routing(f"topk_{k}_renorm", "topk", k=k, renorm=True)
                for k in config.frontier_topk]
    out += [Routing(f"topp_{p:g}", "topp", p=p) for p in config.frontier_topp]
    for label, null, temperature, renorm in config.frontier_bh:
        out += [Routing(f"{label}@{a:g}", "bh", alpha=a, null=null, temperature=temperature,
                        renorm=renorm) for a in config.frontier_alphas]
    if config.frontier_thresholds:
        from .. import zoo

        experts = zoo.hf_config(config.model).num_experts
        label = THRESHOLD_PREFIX + config.frontier_threshold_null.split("_")[0]
        out += [Routing(f"{label}@{m:g}", "threshold", alpha=m / experts,
                        null=config.frontier_threshold_null)
                for m in config.frontier_thresholds]
    return out


def rule(config, name: str) -> Routing:
    for r in rules(config):
        if r.name == name:
            return r
    raise BenchlabError(f"frontier rule {name!r}: unknown (e.g. topk_2, topp_0.3, "
                        f"{config.frontier_bh[0][0]}@{config.frontier_alphas[0]:g})")


def family(r: Routing) -> str:
    if r.method == "topk":
        return "topk_renorm" if r.renorm else TOPK_FAMILY
    return "topp" if r.method == "topp" else r.name.split("@")[0]


def param(r: Routing) -> float:
    """The rule's knob: k, p, alpha, or the threshold's aimed-at experts per token (its name)."""
    if r.method == "threshold":
        return float(r.name.split("@")[1])
    return r.k if r.method == "topk" else (r.p if r.method == "topp" else r.alpha)


def evaluate(setup, r: Routing, outdir: Path | None = None) -> dict:
    """heldout_eval of rule `r`, stored as OUT/points/<name>.npz and reused when its key matches."""
    from .harness import heldout_eval

    path = Path(outdir) / "points" / f"{r.name}.npz" if outdir is not None else None
    blob = json.dumps({"model": setup.model_digest, "rule": asdict(r),
                       "calib": int(setup.calib.numel()), "heldout": int(setup.heldout.numel())},
                      sort_keys=True)
    key = hashlib.sha256(blob.encode()).hexdigest()[:16]
    if path is not None and path.exists():
        try:
            with np.load(path) as z:
                if str(z["key"]) == key:
                    return {k: z[k] for k in z.files if k != "key"}
        except Exception:  # a damaged point is recomputed (written atomically, so rare)
            pass
    ev = {k: np.asarray(v, dtype=np.float64) for k, v in heldout_eval(setup, r).items()}
    if path is not None:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, key=np.array(key), **ev)
    return ev


def drift(setup, r: Routing) -> dict:
    """P(p <= alpha) and the fill-in share per layer on held-out tokens: the null calibrated
    under top-8 (routing with it, "before") and under the routing itself ("after")."""
    from .harness import heldout_eval

    before = heldout_eval(setup, r, null=setup.null_for(r, under="topk_8"))
    after = heldout_eval(setup, r)
    return {"p_below_before": before["p_below"], "p_below_after": after["p_below"],
            "fill_in_before": before["fill_in"], "fill_in_after": after["fill_in"],
            "experts_before": float(before["experts"].mean()),
            "experts_after": float(after["experts"].mean())}


SPLIT_SEED = 0


def split(config, n_seq: int) -> dict[str, np.ndarray]:
    """Held-out sequence ids (sorted) of the selection split (a seeded random frontier_selection
    share: it chooses) and of the confirmation split (the rest: it tests what was chosen). Random,
    not the first half: held-out documents come in corpus order, and a contiguous split would
    confound the choice with a shift between the corpus' first and second halves."""
    n_sel = int(round(n_seq * config.frontier_selection))
    order = np.random.default_rng(SPLIT_SEED).permutation(n_seq)
    return {"selection": np.sort(order[:n_sel]), "confirmation": np.sort(order[n_sel:])}


def part(ev: dict, n_seq: int, seqs=None) -> dict:
    """The per-token arrays of a point (kl, nll, experts) on held-out sequences `seqs` (every
    sequence when None), each beside its tokens' sequence ids (`<key>_seq`)."""
    out = {}
    for key in ("kl", "nll", "experts"):
        x = np.asarray(ev[key], float).reshape(n_seq, -1)  # [sequences, tokens]
        ids = np.broadcast_to(np.arange(n_seq)[:, None], x.shape)
        if seqs is not None:
            x, ids = x[seqs], ids[seqs]
        out[key], out[f"{key}_seq"] = x.ravel(), ids.ravel()
    return out


def _ci(q: dict, key: str, n: int) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean over sequences of q[key]."""
    return stats.bootstrap_ci(stats.unit_values(q[key], q[f"{key}_seq"]), n_resamples=n)


def summarize(points: dict[str, dict], rs: list[Routing], n_boot: int, n_seq: int,
              seqs=None) -> list[dict]:
    """One row per rule on held-out sequences `seqs` (all when None): mean experts, KL and
    perplexity with 95% bootstrap intervals over sequences."""
    rows = []
    for r in rs:
        ev = points[r.name]
        q = part(ev, n_seq, seqs)
        nll_lo, nll_hi = _ci(q, "nll", n_boot)
        row = {"rule": r.name, "family": family(r), "param": param(r),
               "null": r.null if r.calibrated else "",
               "experts": float(q["experts"].mean()), "experts_ci": _ci(q, "experts", n_boot),
               "kl": float(q["kl"].mean()), "kl_ci": _ci(q, "kl", n_boot),
               "ppl": math.exp(float(q["nll"].mean())), "ppl_ci": (math.exp(nll_lo),
                                                                   math.exp(nll_hi))}
        if "fill_in" in ev:
            row["fill_in"] = float(np.mean(ev["fill_in"]))
            row["fill_in_by_layer"] = [float(v) for v in ev["fill_in"]]
            row["fill_in_top"] = float(np.nanmean(ev["fill_in_top"])) if np.isfinite(
                ev["fill_in_top"]).any() else float("nan")
        rows.append(row)
    return rows


def interpolate(ref: list[dict], c: float) -> dict | None:
    """The reference family (parts sorted by mean count) at mean expert count c, token by token:
    linear between the two points whose counts bracket c; None outside their counts."""
    counts = [float(q["experts"].mean()) for q in ref]
    for a, b, ca, cb in zip(ref, ref[1:], counts, counts[1:], strict=False):
        if ca <= c <= cb:
            w = 0.0 if cb == ca else (c - ca) / (cb - ca)
            return {k: (1 - w) * a[k] + w * b[k] for k in ("kl", "nll")}
    return None


def curve(rows: list[dict], xs: np.ndarray, key: str = "kl") -> np.ndarray:
    """Summary rows of one family (any order) interpolated at counts xs as `interpolate` does
    (linear in the count): what the figure draws for the reference."""
    pts = sorted((r["experts"], r[key]) for r in rows)
    return np.interp(xs, [c for c, _ in pts], [v for _, v in pts])


def versus(points: dict[str, dict], rs: list[Routing], n_seq: int, seqs=None, *,
           reference: str = TOPK_FAMILY, names=None, n_boot: int = 2000,
           tested_only: bool = True) -> list[dict]:
    """Each rule named in `names` (default: every rule outside the reference family) against
    the reference family interpolated at the rule's own mean expert count on held-out sequences
    `seqs`: per-sequence mean differences rule - reference of KL (the verdict; < 0: the rule is
    better) and of NLL, stats.compare_paired over sequences, Holm over the rows (stats.family:
    VERDICT_COLUMNS first; p_seq is p, the sequence-level p). Rules outside the reference's
    counts, or (tested_only) equal to it on every sequence (no test), are left out."""
    ref = sorted((part(points[r.name], n_seq, seqs) for r in rs if family(r) == reference),
                 key=lambda q: float(q["experts"].mean()))
    rows = []
    for r in rs:
        if family(r) == reference or (names is not None and r.name not in names):
            continue
        q = part(points[r.name], n_seq, seqs)
        c = float(q["experts"].mean())
        b = interpolate(ref, c)
        if b is None:
            continue
        kl = stats.compare_paired(q["kl"], b["kl"], units=q["kl_seq"], n_resamples=n_boot)
        nll = stats.compare_paired(q["nll"], b["nll"], units=q["nll_seq"], n_resamples=n_boot)
        rows.append({**kl, "rule": r.name, "family": family(r), "param": param(r),
                     "experts": c, "kl": float(q["kl"].mean()), "ref_kl": float(b["kl"].mean()),
                     "nll_diff": nll["estimate"], "nll_ci_lo": nll["ci_lo"],
                     "nll_ci_hi": nll["ci_hi"], "nll_p_seq": nll["p"]})
    # a rule equal to the reference on every sequence (topp at one expert) has no test: left out
    out = stats.family([r for r in rows if np.isfinite(r["p"]) or not tested_only],
                       better="below")
    for row in out:
        row["p_seq"] = row["p"]
    return out


def study(config, points: dict[str, dict], rs: list[Routing], n_seq: int) -> dict:
    """The frontier's tests. selection: every rule against top-k on the selection split, and
    each family's chosen rule (the lowest KL difference there). versus_topk: the chosen rules on
    the confirmation split, Holm over the families (the verdict). grid: every rule on the
    confirmation split, Holm over the grid. vs_threshold: each BH rule of the threshold's null
    against the threshold family at equal count on the confirmation split (what BH's step-up
    adds), Holm over them."""
    sp = split(config, n_seq)
    sel = versus(points, rs, n_seq, sp["selection"], n_boot=200)
    chosen: dict[str, dict] = {}
    for row in sel:
        f = row["family"]
        if f not in chosen or row["estimate"] < chosen[f]["estimate"]:
            chosen[f] = row
    conf = sp["confirmation"]
    thr = [r for r in rs if family(r).startswith(THRESHOLD_PREFIX)]
    bh_same = [r.name for r in rs if r.method == "bh" and thr and r.null == thr[0].null
               and r.temperature == 1 and not r.renorm]
    return {
        "splits": {k: [int(i) for i in v] for k, v in sp.items()},
        "n_seq": n_seq, "selection": sel,
        "chosen": {f: row["rule"] for f, row in chosen.items()},
        "versus_topk": versus(points, rs, n_seq, conf,
                              names={row["rule"] for row in chosen.values()},
                              n_boot=config.bootstrap),
        "grid": versus(points, rs, n_seq, conf, n_boot=config.bootstrap),
        "vs_threshold": versus(points, rs, n_seq, conf, reference=family(thr[0]) if thr
                               else "", names=set(bh_same), n_boot=config.bootstrap),
    }


def _tally(rows: list[dict]) -> str:
    """'better at 3 (1.04-1.27 experts/token), worse at 7 (1.77-7.58), not shown at 2'."""
    out = []
    for word in ("better", "worse", stats.NOT_SHOWN):
        hit = [r["experts"] for r in rows if r["verdict"] == word]
        out.append(f"{word} at {len(hit)}" + (f" ({min(hit):.2f}-{max(hit):.2f} experts/token)"
                                              if hit and word != stats.NOT_SHOWN else ""))
    return ", ".join(out)


def verdict_sentence(st: dict, seq_len: int) -> str:
    """The report's verdict, read off the study's tables: the confirmation split's test of each
    BH family's chosen alpha against top-k, then the grid and the threshold baseline."""
    conf = [t for t in st["versus_topk"] if t["family"].startswith("bh_")]
    if not conf:
        return "No BH rule reached the range of top-k's expert counts (1-8): not shown."
    n = conf[0]["n_units"]
    each = "; ".join(
        f"{t['rule']} ({t['experts']:.2f} experts/token) {t['verdict']}: KL difference "
        f"{t['estimate']:.3g} (95% CI {t['ci_lo']:.3g} to {t['ci_hi']:.3g}), p_seq "
        f"{t['p_seq']:.2g}, Holm {t['p_holm']:.2g}; NLL difference {t['nll_diff']:.3g} "
        f"(p_seq {t['nll_p_seq']:.2g})" for t in conf)
    grid = [t for t in st["grid"] if t["family"].startswith("bh_")]
    out = (f"On the confirmation split ({n} held-out sequences of {seq_len} tokens, not used to "
           f"choose), each BH family's alpha chosen on the selection split against top-k at "
           f"equal mean expert count (Holm over the {len(st['versus_topk'])} families tested): "
           f"{each}. Over the grid of {len(grid)} BH points on the confirmation split (Holm over "
           f"all {len(st['grid'])} rules): {_tally(grid)}.")
    base = [t for t in st["versus_topk"] if t["family"].startswith(THRESHOLD_PREFIX)]
    out += "".join(
        f" The fixed within-token threshold without BH, chosen and tested the same way: "
        f"{t['rule']} ({t['experts']:.2f} experts/token) {t['verdict']}: KL difference "
        f"{t['estimate']:.3g} (95% CI {t['ci_lo']:.3g} to {t['ci_hi']:.3g}), Holm "
        f"{t['p_holm']:.2g}." for t in base)
    thr = st["vs_threshold"]
    if thr:
        out += (f" Against the fixed within-token threshold at equal count (the same null "
                f"without BH's step-up; Holm over {len(thr)}), the {thr[0]['family']} points "
                f"are {_tally(thr)}.")
    return out
