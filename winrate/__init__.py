"""Model-based evaluation (Llama 2 section 3.4.1): win rates of every model stage of a run, judged by the
reward models and, on the built-in world, by the oracle. Entry point: `python -m winrate` (Hydra)."""
