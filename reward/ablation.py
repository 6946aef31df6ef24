"""The margin ablation (Llama 2 table 28): the same reward model trained with margin none, small and large.

    python -m reward.ablation [overrides]            # e.g. +experiment=safety, data=hh_rlhf, run.name=x

Each variant is a plain `reward/train.py` run (same data, seed and overrides) into
`<run.root>/<run.name>/reward/ablation/<margin>/`; a finished variant is reused, not retrained (unless
run.overwrite=true). The
per-rating accuracy rows are printed side by side for every test set and written to
`reward/ablation/table.md`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from reward.losses import MARGINS
from reward.metrics import format_accuracy_table

REPO = Path(__file__).resolve().parents[1]


def compose(overrides: list[str]):
    """The reward config these overrides give (to find the run folder, and to fail on typos before training)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    import reward.config  # noqa: F401  (registers the schema)

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        return hydra_compose(config_name="reward", overrides=overrides)


def train_variant(margin: str, overrides: list[str]) -> None:
    command = [
        sys.executable,
        str(REPO / "reward" / "train.py"),
        *overrides,
        f"train.margin={margin}",
        f"stage=reward/ablation/{margin}",
    ]
    subprocess.run(command, check=True)


def ablation_tables(results: dict[str, dict]) -> str:
    """One table per test set, one row per margin (paper table 28's layout)."""
    test_sets = next(iter(results.values()))["eval"].keys()
    parts = []
    for name in test_sets:
        rows = {margin: metrics["eval"][name]["accuracy"] for margin, metrics in results.items()}
        parts.append(f"Test set {name} (accuracy %):\n\n" + format_accuracy_table(rows, "margin"))
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    overrides = list(sys.argv[1:] if argv is None else argv)
    if any(o.split("=")[0].lstrip("+~") in ("train.margin", "stage") for o in overrides):
        raise SystemExit(
            "reward.ablation sets train.margin and stage itself; leave them out of the overrides"
        )
    cfg = compose(overrides)
    folder = Path(cfg.run.root) / cfg.run.name / "reward" / "ablation"
    results = {}
    for margin in MARGINS:
        metrics_file = folder / margin / "metrics.json"
        if cfg.run.overwrite or not metrics_file.is_file():
            train_variant(margin, overrides)
        results[margin] = json.loads(metrics_file.read_text())
    table = ablation_tables(results)
    (folder / "table.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
