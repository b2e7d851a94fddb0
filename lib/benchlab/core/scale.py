"""The three scales, defined once. Experiments read their config for a scale, never the name."""

from .errors import BenchlabError

SCALES = ("tiny", "small", "paper")
DEFAULT_SCALE = "tiny"


def check_scale(name: str) -> str:
    if name not in SCALES:
        raise BenchlabError(
            f"--bench-scale: unknown scale {name!r}; choose one of {', '.join(SCALES)}")
    return name


def config_for(configs: dict, scale: str, where: str = "CONFIGS"):
    """The experiment's config object for `scale` (configs is a dict scale -> frozen dataclass)."""
    check_scale(scale)
    try:
        return configs[scale]
    except KeyError:
        raise BenchlabError(f"{where}: no config for scale {scale!r}") from None
