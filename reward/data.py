"""The reward models' data: primary preference pairs, the paper's mixtures, and the test sets.

Llama 2 (section 3.2.2) trains the helpfulness RM on all helpfulness data plus safety and open-source
data, and the safety RM on safety data plus Anthropic Harmless mixed 90/10 with helpfulness data. Here
the primary data is data.train (the world's file for the RM on data=builtin) and each `mix` component
adds a share of the final training set. `curriculum` pairs (not in the paper) are trained on once before it.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

from chat.dialog import PreferencePair
from pipeline.inputs import data_sources, world_dir

log = logging.getLogger(__name__)

BUILTIN_PREFIX = "builtin:"
BUILTIN_PAIRS = "preferences/{objective}/{{split}}.jsonl"  # within the built-in world
BUILTIN_OBJECTIVES = ("helpfulness", "safety")
# Every pair set of the world: the two RMs' own, the contrast pairs (right vs wrong value, written alike;
# train split only) that teach the helpfulness RM to check values, and the safety contrast pairs (one
# refusal and one advice, ranked by whether the request is harmful) that teach the safety RM to read it.
BUILTIN_SETS = (*BUILTIN_OBJECTIVES, "contrast", "contrast-plain", "safety-contrast")
PAIR_FORMATS = ("auto", "preferences", "hh_rlhf")


def builtin_file(run_cfg, data_cfg, name: str, split: str) -> str:
    if name not in BUILTIN_SETS:
        raise ValueError(f"{BUILTIN_PREFIX}{name}: unknown (expected one of {', '.join(BUILTIN_SETS)})")
    return str(world_dir(run_cfg, data_cfg) / BUILTIN_PAIRS.format(objective=name).format(split=split))


def resolve_sources(sources: list[str], run_cfg, data_cfg, split: str) -> list[str]:
    """Paths / hub names, with `builtin:<set>` (one of BUILTIN_SETS) turned into the world's file."""
    return [
        builtin_file(run_cfg, data_cfg, s[len(BUILTIN_PREFIX) :], split)
        if s.startswith(BUILTIN_PREFIX)
        else s
        for s in sources
    ]


def read_pairs(sources: list[str], split: str, fmt: str) -> list[PreferencePair]:
    """Preference pairs from the sources (every form chat.readers accepts); bad records are counted there."""
    from chat.readers import read_preferences

    if fmt not in PAIR_FORMATS:
        raise ValueError(
            f"data.format: {fmt!r} holds no preference pairs (expected one of {', '.join(PAIR_FORMATS)})"
        )
    return read_preferences(sources, split=split)[0]


def primary_sources(run_cfg, data_cfg, objective: str, split: str) -> list[str]:
    if data_cfg.name == "builtin":
        return [builtin_file(run_cfg, data_cfg, objective, split)]
    return data_sources(run_cfg, data_cfg, split, "")


def mixture_sizes(primary: int, shares: list[float]) -> list[int]:
    """Pairs each component should add so that it is `share` of the whole, the primary data kept whole.

    With shares s_k and S = sum s_k < 1, the primary data is a fraction 1 - S of the total, so component
    k adds round(s_k / (1 - S) * primary) pairs.
    """
    total_share = sum(shares)
    if any(s <= 0 for s in shares) or total_share >= 1:
        raise ValueError(
            f"mix: every share must be > 0 and together < 1 (the rest is the primary data), got {shares}"
        )
    return [round(s / (1 - total_share) * primary) for s in shares]


def mix_pairs(
    primary: list[PreferencePair], components: list[tuple[str, list[PreferencePair], float]], seed: int
) -> tuple[list[PreferencePair], dict[str, int]]:
    """The primary pairs plus a seeded sample of each component, shuffled; and how many came from each."""
    rng = random.Random(seed)
    wanted = mixture_sizes(len(primary), [share for _, _, share in components])
    mixed, counts = list(primary), {"primary": len(primary)}
    for (name, pairs, _), n in zip(components, wanted):
        if n > len(pairs):
            log.warning(
                "mix component %s: wanted %d pairs for its share, has %d; using all", name, n, len(pairs)
            )
            n = len(pairs)
        mixed += rng.sample(pairs, n)
        counts[name] = n
    rng.shuffle(mixed)
    return mixed, counts


def _world_only(sources, data_cfg, what: str, key: str) -> bool:
    """True (and logged) when sources draw only on the built-in world and the run trains on other data."""
    if data_cfg.name != "builtin" and sources and all(s.startswith(BUILTIN_PREFIX) for s in sources):
        log.info(
            "%s draws on the built-in world; not used with data=%s (set %s for your data)",
            what,
            data_cfg.name,
            key,
        )
        return True
    return False


def usable_components(mix: list, data_cfg) -> list:
    """The mix components that apply: the built-in world's own ones only when training on it."""
    kept = []
    for component in mix:
        if _world_only(component.sources, data_cfg, f"mix component {component.name}", "mix.<rm>=[...]"):
            continue
        if not component.sources:
            raise ValueError(f"mix component {component.name!r}: no sources")
        kept.append(component)
    return kept


def training_pairs(cfg, objective: str) -> tuple[list[PreferencePair], dict[str, int]]:
    """The reward model's training set: primary pairs (capped by data.max_train_samples) plus its mixture."""
    primary = read_pairs(primary_sources(cfg.run, cfg.data, objective, "train"), "train", cfg.data.format)
    if cfg.data.max_train_samples:
        primary = primary[: cfg.data.max_train_samples]
    components = [
        (
            c.name,
            read_pairs(resolve_sources(list(c.sources), cfg.run, cfg.data, "train"), "train", "auto"),
            c.share,
        )
        for c in usable_components(cfg.mix[objective], cfg.data)
    ]
    return mix_pairs(primary, components, cfg.run.seed)


def curriculum_pairs(cfg, objective: str) -> list[PreferencePair]:
    """The pairs trained on once before the mixture (`curriculum.<rm>`), in file order; none when unset."""
    sources = list(cfg.curriculum[objective])
    if not sources or _world_only(
        sources, cfg.data, f"curriculum.{objective}", f"curriculum.{objective}=[...]"
    ):
        return []
    return read_pairs(resolve_sources(sources, cfg.run, cfg.data, "train"), "train", "auto")


def eval_set_name(source: str) -> str:
    """A short name for a test source: the file name without data suffixes, or the hub name's last part."""
    name = Path(source).name
    for suffix in (".gz", ".jsonl", ".json", ".parquet"):
        name = name.removesuffix(suffix)
    return name


def eval_sets(cfg) -> dict[str, list[PreferencePair]]:
    """Every test set to judge the RM on: both of the built-in world's (as the paper reports both RMs on
    both Meta test sets), or each of data.test separately."""
    if cfg.data.name == "builtin":
        return {
            objective: read_pairs([builtin_file(cfg.run, cfg.data, objective, "test")], "test", "auto")
            for objective in BUILTIN_OBJECTIVES
        }
    sets = {}
    for source in cfg.data.test:
        name = eval_set_name(source)
        if name in sets:
            raise ValueError(f"data.test: two test sources are both named {name!r}; rename one")
        sets[name] = read_pairs([source], "test", cfg.data.format)
    return sets
