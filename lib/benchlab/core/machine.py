"""Machine facts added to pytest-benchmark's machine_info and to every record's provenance."""

import functools
import importlib.metadata as md


def _version(pkg: str) -> str | None:
    try:
        return md.version(pkg)
    except md.PackageNotFoundError:
        return None


def machine_info() -> dict:
    import torch

    info = {
        "torch": torch.__version__,
        "transformers": _version("transformers"),
        "numpy": _version("numpy"),
        "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "gpu_count": torch.cuda.device_count(),
        "gpu_name": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch_threads": torch.get_num_threads(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "blas": _blas_info(),
    }
    return info


def _blas_info() -> str:
    import torch

    cfg = torch.__config__.show()
    wanted = ("BLAS", "LAPACK", "MKL", "oneDNN")
    keep = [ln.strip() for ln in cfg.splitlines() if any(k in ln for k in wanted)]
    return "; ".join(keep)[:400]


ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile",
             "amx_bf16", "asimd", "sve")


def cpu() -> dict:
    """CPU model and the ISA flags that decide which BLAS/oneDNN kernels run (Linux)."""
    import platform

    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model") and model in ("", platform.machine()):
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return {"cpu": model, "isa": [f for f in ISA_FLAGS if f in flags], "arch": platform.machine()}


def facts() -> dict:
    """What every record carries about the machine it ran on: CPU model and ISA flags, torch
    threads, BLAS, torch/transformers/numpy versions, GPU (the commit is a record field)."""
    import sys

    torch = sys.modules.get("torch")
    return {**_static_facts(), "torch_threads": torch.get_num_threads() if torch else None}


@functools.cache
def _static_facts() -> dict:
    import torch

    return {**cpu(), "torch": torch.__version__, "transformers": _version("transformers"),
            "numpy": _version("numpy"), "cuda": torch.version.cuda,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "blas": _blas_info()}
