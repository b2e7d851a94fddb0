"""Machine facts added to pytest-benchmark's machine_info and to every record's provenance."""

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
