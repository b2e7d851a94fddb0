"""The three scales, defined once. Experiments read their config for a scale, never the name."""

from .errors import BenchlabError

SCALES = ("tiny", "small", "paper")
DEFAULT_SCALE = "tiny"
# full: the scale's own settings; smoke: every case kind's exact code path with the fewest cases,
# steps, rounds, lengths and calibration tokens that still run it (each package's `smoke(config)`)
BUDGETS = ("full", "smoke")


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


def check_budget(name: str) -> str:
    if name not in BUDGETS:
        raise BenchlabError(
            f"--bench-budget: unknown budget {name!r}; choose one of {', '.join(BUDGETS)}")
    return name
