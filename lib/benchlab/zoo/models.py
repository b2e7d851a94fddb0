"""Random-init builders of the zoo's specs (zoo.specs).

    python -c "from benchlab import zoo; m = zoo.build('opt-tiny'); print(m.num_parameters())"

`build("opt-125m")` gives a random model of the real shape; `zoo.load("opt-125m")` (zoo.hub) the
real weights.
"""

import torch
import transformers

from ..core.provenance import config_hash
from .manifest import CORPUS, TOKENIZER, digest, is_pinned
from .manifest import MODELS as PINNED
from .specs import FAMILIES, MODELS, ModelSpec


def spec(name: str) -> ModelSpec:
    """The registered spec; unknown names raise BenchlabError with "did you mean"."""
    return MODELS.get(name)


def names(scale: str | None = None) -> list[str]:
    """Registered spec names, optionally only those of one scale (tiny | small | paper)."""
    return [n for n, s in MODELS.items() if scale is None or s.scale == scale]


def hf_config(name_or_spec) -> transformers.PretrainedConfig:
    """The transformers config object of a spec."""
    s = spec(name_or_spec) if isinstance(name_or_spec, str) else name_or_spec
    return getattr(transformers, FAMILIES[s.family][0])(**s.config)


def model_class(family: str):
    return getattr(transformers, FAMILIES[family][1])


def build(name: str, seed: int = 0) -> transformers.PreTrainedModel:
    """Random-init model of the spec: float32, eval mode, same weights for the same seed (in a
    forked RNG: the global torch RNG is left as it was)."""
    s = spec(name)
    config = hf_config(s)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class(s.family)(config)
    return model.to(torch.float32).eval()


def artifact_inputs(*names: str) -> dict[str, str]:
    """{"spec:<name>": hash, "model:<name>": sha, "tokenizer": sha, "corpus": sha} for records'
    `inputs`: the hash of each named zoo spec (zoo.specs is outside the code version, so a record
    depends on its own model's spec only) and the sha256 of each pinned model."""
    out = {f"spec:{n}": config_hash(MODELS.get(n)) for n in names if n in MODELS}
    out.update({f"model:{n}": digest(n) for n in names if n in PINNED and is_pinned(n)})
    out.update(tokenizer=digest(TOKENIZER), corpus=digest(CORPUS))
    return out
