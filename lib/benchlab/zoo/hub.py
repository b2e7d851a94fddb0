"""Loading models: a local save_pretrained directory, a paper spec's hub id, a raw hub id, or a
tiny/small spec's cached briefly trained model (zoo.train.trained); offline by default in tests.

    HF_HUB_OFFLINE=1 python -c "from benchlab import zoo; print(zoo.load('opt-tiny').config)"
"""

import contextlib
import os
from pathlib import Path

import torch
import transformers

from ..core.errors import BenchlabError, first_line
from .models import spec
from .specs import MODELS
from .train import trained


def _offline() -> bool:
    flag = os.environ.get("HF_HUB_OFFLINE", "0").strip().upper()
    return flag in {"1", "ON", "YES", "TRUE"}


def load(name_or_dir, *, dtype=None, device="cpu") -> transformers.PreTrainedModel:
    """Load a model: a local directory (save_pretrained layout), a paper spec's hub id, or a hub id.

    A tiny/small spec (no hub id) gives `trained(name)`. With HF_HUB_OFFLINE=1 (read at call time)
    nothing touches the network; a hub id missing from the local cache raises one BenchlabError
    saying what to download. HF_TOKEN is passed for gated models (Llama-2).
    """
    path = Path(os.fspath(name_or_dir)).expanduser()
    if path.is_dir():
        where, kwargs = str(path), {"local_files_only": True}
    elif isinstance(name_or_dir, str) and "/" not in name_or_dir or name_or_dir in MODELS:
        s = spec(name_or_dir)
        if s.hub_id is None:  # a tiny/small spec: the cached briefly trained model
            model = trained(s.name)
            return model.to(device=device, dtype=dtype or torch.float32)
        where, kwargs = s.hub_id, {"token": os.environ.get("HF_TOKEN") or None}
    elif path.exists():
        raise BenchlabError(f"{path}: not a model directory (expected config.json + weights)")
    else:
        where, kwargs = str(name_or_dir), {"token": os.environ.get("HF_TOKEN") or None}
    if _offline():
        kwargs["local_files_only"] = True
    from safetensors import SafetensorError

    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(
            where, dtype=dtype or torch.float32, **kwargs)
    except (OSError, ValueError, SafetensorError, RuntimeError) as e:  # hub errors are OSErrors;
        if isinstance(e, RuntimeError) and not Path(where).is_dir():  # corrupt local weights
            raise
        first = first_line(e)
        if Path(where).is_dir():
            raise BenchlabError(f"{where}: cannot load model ({first})") from None
        raise BenchlabError(
            f"{where}: model not available offline ({first[:160]}); download it where the hub is "
            f"reachable (`hf download {where}`, HF_TOKEN for gated models) and set HF_HOME, or "
            "pass a local directory") from None
    return model.to(device).eval()


@contextlib.contextmanager
def offline():
    """Force offline hub access inside the block (for tests and air-gapped runs)."""
    import huggingface_hub.constants as hc

    old_env, old_const = os.environ.get("HF_HUB_OFFLINE"), hc.HF_HUB_OFFLINE
    os.environ["HF_HUB_OFFLINE"], hc.HF_HUB_OFFLINE = "1", True
    try:
        yield
    finally:
        hc.HF_HUB_OFFLINE = old_const
        if old_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old_env
