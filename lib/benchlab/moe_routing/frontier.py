"""The quality/compute frontier on held-out text: every rule, its experts and its quality cost.

    benchlab moe-routing frontier --output runs/moe_frontier --report reports/moe_routing/frontier

Rules (config.frontier_*): topk_1..8 (and renormalized), top-p over a grid of p, and each BH
variant (a null definition, temperature, renormalization) over a grid of alpha, every BH rule with
its own null calibrated under itself (model.calibrate). Per rule and held-out token: KL from
topk_8, NLL, experts per token (mean over layers), kept in OUT/points/<rule>.npz (atomic, keyed by
model digest and rule: a rerun resumes). At equal mean expert count each rule is compared with top-k
interpolated between floor and ceil of its count, token by token: a paired t-test and a 95%
bootstrap interval of the KL difference. P(p <= alpha) per layer is shown for nulls calibrated
under top-8 ("before") and under the routing itself ("after").
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


def rules(config) -> list[Routing]:
    out = [Routing(f"topk_{k}", "topk", k=k) for k in config.frontier_topk]
    if config.frontier_renorm_topk:
        out += [Routing(f"topk_{k}_renorm", "topk", k=k, renorm=True)
                for k in config.frontier_topk]
    out += [Routing(f"topp_{p:g}", "topp", p=p) for p in config.frontier_topp]
    for label, null, temperature, renorm in config.frontier_bh:
        out += [Routing(f"{label}@{a:g}", "bh", alpha=a, null=null, temperature=temperature,
                        renorm=renorm) for a in config.frontier_alphas]
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


def point_key(setup, r: Routing) -> str:
    blob = json.dumps({"model": setup.model_digest, "rule": asdict(r),
                       "calib": int(setup.calib.numel()), "heldout": int(setup.heldout.numel())},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def evaluate(setup, r: Routing, outdir: Path | None = None) -> dict:
    """heldout_eval of rule `r`, stored as OUT/points/<name>.npz and reused when its key matches."""
    from .experiment import heldout_eval

    path = Path(outdir) / "points" / f"{r.name}.npz" if outdir is not None else None
    key = point_key(setup, r)
    if path is not None and path.exists():
        try:
            with np.load(path) as z:
                if str(z["key"]) == key:
                    return {k: z[k] for k in z.files if k != "key"}
        except Exception:  # a damaged point is recomputed (written atomically, so rare)
            pass
    ev = {k: np.asarray(v, dtype=np.float64) for k, v in heldout_eval(setup, r).items()}
    if path is not None:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, key=np.array(key), **ev)
    return ev


def drift(setup, r: Routing) -> dict:
    """P(p <= alpha) and the fill-in share per layer on held-out tokens: the null calibrated
    under top-8 (routing with it, "before") and under the routing itself ("after")."""
    from .experiment import heldout_eval

    before = heldout_eval(setup, r, null=setup.null_for(r, under="topk_8"))
    after = heldout_eval(setup, r)
    return {"p_below_before": before["p_below"], "p_below_after": after["p_below"],
            "fill_in_before": before["fill_in"], "fill_in_after": after["fill_in"],
            "experts_before": float(before["experts"].mean()),
            "experts_after": float(after["experts"].mean())}


def _ci(x, n, statistic=np.mean):
    return stats.bootstrap_ci(np.asarray(x, float), statistic, n_resamples=n)


def summarize(points: dict[str, dict], rs: list[Routing], n_boot: int) -> list[dict]:
    """One row per rule: mean experts, KL and perplexity with 95% bootstrap intervals."""
    rows = []
    for r in rs:
        ev = points[r.name]
        nll_lo, nll_hi = _ci(ev["nll"], n_boot)
        row = {"rule": r.name, "family": family(r), "param": r.k if r.method == "topk" else (
            r.p if r.method == "topp" else r.alpha), "null": r.null if r.calibrated else "",
            "experts": float(ev["experts"].mean()), "experts_ci": _ci(ev["experts"], n_boot),
            "kl": float(ev["kl"].mean()), "kl_ci": _ci(ev["kl"], n_boot),
            "ppl": math.exp(float(ev["nll"].mean())), "ppl_ci": (math.exp(nll_lo),
                                                                 math.exp(nll_hi))}
        if "fill_in" in ev:
            row["fill_in"] = float(np.mean(ev["fill_in"]))
            row["fill_in_by_layer"] = [float(v) for v in ev["fill_in"]]
            row["fill_in_top"] = float(np.nanmean(ev["fill_in_top"])) if np.isfinite(
                ev["fill_in_top"]).any() else float("nan")
        rows.append(row)
    return rows


def versus_topk(points: dict[str, dict], rs: list[Routing], n_boot: int) -> list[dict]:
    """Each non-top-k rule against plain top-k at its own mean expert count (top-k interpolated
    token by token between floor and ceil of that count): paired t-test and bootstrap interval
    of the per-token KL difference (rule - top-k; < 0 means the rule is better)."""
    topk = {r.k: points[r.name] for r in rs if family(r) == TOPK_FAMILY}
    out = []
    for r in rs:
        if family(r) == TOPK_FAMILY:
            continue
        ev = points[r.name]
        c = float(ev["experts"].mean())
        lo, hi = math.floor(c), math.ceil(c)
        if lo not in topk or hi not in topk:
            continue
        w = c - lo
        ref_kl = (1 - w) * topk[lo]["kl"] + w * topk[hi]["kl"]
        ref_nll = (1 - w) * topk[lo]["nll"] + w * topk[hi]["nll"]
        d = ev["kl"] - ref_kl
        t, p = stats.paired_ttest(ev["kl"], ref_kl)
        ci = _ci(d, n_boot)
        ref_ci = _ci(ref_kl, n_boot)
        verdict = "better" if ci[1] < 0 else ("worse" if ci[0] > 0 else "tie")
        out.append({"rule": r.name, "family": family(r), "experts": c,
                    "kl": float(ev["kl"].mean()), "topk_kl": float(ref_kl.mean()),
                    "topk_kl_ci": ref_ci, "kl_diff": float(d.mean()), "kl_diff_ci": ci,
                    "t": t, "p": p, "nll_diff": float((ev["nll"] - ref_nll).mean()),
                    "inside_topk_ci": bool(ev["kl"].mean() <= ref_ci[1]), "verdict": verdict})
    return out


def verdict_sentence(tests: list[dict], n_tokens: int) -> str:
    """The report's one sentence: which rule is on the frontier, and BH's shortfall where any."""
    bh = [t for t in tests if t["family"].startswith("bh_")]
    if not bh:
        return "No BH rule reached the range of top-k's expert counts (1-8): not shown."
    fams = sorted({t["family"] for t in bh})
    score = {f: (sum(t["verdict"] == "worse" for t in bh if t["family"] == f),
                 float(np.mean([t["kl_diff"] for t in bh if t["family"] == f]))) for f in fams}
    best = min(fams, key=lambda f: score[f])
    mine = [t for t in bh if t["family"] == best]
    worse = [t for t in mine if t["verdict"] == "worse"]
    better = [t for t in mine if t["verdict"] == "better"]
    span = f"{min(t['experts'] for t in mine):.2f}-{max(t['experts'] for t in mine):.2f}"
    if not worse:
        return (f"The best BH variant, {best}, is on the top-k frontier or above it at every "
                f"count it reaches ({span} experts/token): better than top-k at {len(better)} "
                f"and tied at {len(mine) - len(better)} of {len(mine)} points (95% bootstrap "
                f"intervals of the paired KL difference over {n_tokens} held-out tokens).")
    rel = [t["kl_diff"] / t["topk_kl"] for t in worse if t["topk_kl"] > 0]
    pmax = max(t["p"] for t in worse)
    where = (f" ({min(t['experts'] for t in better):.2f}-{max(t['experts'] for t in better):.2f}"
             " experts/token)") if better else ""
    return (f"Top-k is on the frontier: the best BH variant, {best}, is worse than top-k at "
            f"equal mean expert count at {len(worse)} of {len(mine)} points ({span} "
            f"experts/token), by {min(t['kl_diff'] for t in worse):.3g}-"
            f"{max(t['kl_diff'] for t in worse):.3g} nats of held-out KL from topk_8 "
            f"({100 * min(rel):.0f}-{100 * max(rel):.0f}% above top-k's; paired t-test over "
            f"{n_tokens} tokens, p <= {pmax:.2g}), tied at {len(mine) - len(worse) - len(better)}"
            f" and better at {len(better)}{where}.")
