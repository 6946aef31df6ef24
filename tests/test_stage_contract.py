"""The stage contract: atomic landing, no silent overwrite, resume from the last whole checkpoint."""

import json
from types import SimpleNamespace

import pytest

from pipeline.__main__ import stage_overrides
from pipeline.stage import Stage, StageAlreadyComplete, find_policy, last_complete_checkpoint, write_json
from pipeline.tracking import wandb_mode


def run_cfg(tmp_path, overwrite=False):
    return SimpleNamespace(root=str(tmp_path), name="r1", overwrite=overwrite)


def test_stage_lands_atomically_and_is_not_overwritten(tmp_path):
    stage = Stage(run_cfg(tmp_path), "sft")
    work = stage.begin()
    assert work == tmp_path / "r1" / "sft.partial"
    (work / "model.safetensors").write_text("weights v1")
    assert not stage.final.exists(), "nothing appears at the final path before the stage finishes"
    stage.finish({"loss": 1.0})
    assert (stage.final / "model.safetensors").read_text() == "weights v1"
    assert json.loads((stage.final / "metrics.json").read_text()) == {"loss": 1.0}
    assert not work.exists()
    with pytest.raises(StageAlreadyComplete, match="run.overwrite=true"):
        Stage(run_cfg(tmp_path), "sft").begin()


def test_overwrite_keeps_old_output_until_new_one_is_done(tmp_path):
    first = Stage(run_cfg(tmp_path), "sft")
    first.begin()
    (first.work / "model.safetensors").write_text("v1")
    first.finish({})
    again = Stage(run_cfg(tmp_path, overwrite=True), "sft")
    again.begin()
    (again.work / "model.safetensors").write_text("v2")
    assert (again.final / "model.safetensors").read_text() == "v1", "old output intact while the new one runs"
    again.finish({})
    assert (again.final / "model.safetensors").read_text() == "v2"
    assert [p.name for p in (tmp_path / "r1").iterdir()] == ["sft"], "no leftovers beside the stage"


def test_interrupted_work_folder_is_kept_for_resume(tmp_path):
    stage = Stage(run_cfg(tmp_path), "reward/helpfulness")
    stage.begin()
    (stage.checkpoints / "checkpoint-5").mkdir(parents=True)
    again = Stage(run_cfg(tmp_path), "reward/helpfulness")
    assert again.begin() == tmp_path / "r1" / "reward" / "helpfulness.partial"
    assert (again.checkpoints / "checkpoint-5").is_dir()


def test_last_complete_checkpoint_skips_half_written_ones(tmp_path):
    for step, state in [(10, "{}"), (20, "{}"), (30, None), (40, '{"trunc')]:
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if state is not None:
            (folder / "trainer_state.json").write_text(state)
    (tmp_path / "checkpoint-x").mkdir()
    assert last_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-20"
    assert last_complete_checkpoint(tmp_path / "missing") is None


def test_find_policy_prefers_the_newest_stage(tmp_path):
    cfg = run_cfg(tmp_path)
    assert find_policy(cfg) is None
    for name in [
        "sft",
        "rejection_sampling/iter-1",
        "rejection_sampling/iter-2",
        "rejection_sampling/iter-10",
    ]:
        (tmp_path / "r1" / name).mkdir(parents=True)
        write_json(tmp_path / "r1" / name / "metrics.json", {})
    (tmp_path / "r1" / "ppo.partial").mkdir()
    # killed between writing metrics.json and the rename: not finished, and its name is no iteration number
    (tmp_path / "r1" / "rejection_sampling" / "iter-11.partial").mkdir()
    write_json(tmp_path / "r1" / "rejection_sampling" / "iter-11.partial" / "metrics.json", {})
    assert find_policy(cfg) == tmp_path / "r1" / "rejection_sampling" / "iter-10"
    assert find_policy(cfg, before="rejection_sampling") == tmp_path / "r1" / "sft"


def test_find_policy_before_a_stage_of_the_users_naming_asks_for_init_from(tmp_path):
    # `python ppo/train.py stage=ppo-lr1e-4`: no place in the stage order, so no "policy before it"
    (tmp_path / "r1" / "sft").mkdir(parents=True)
    write_json(tmp_path / "r1" / "sft" / "metrics.json", {})
    with pytest.raises(ValueError, match=r"'ppo-lr1e-4' is not one of .*init_from=PATH"):
        find_policy(run_cfg(tmp_path), before="ppo-lr1e-4")


def test_pipeline_overrides_go_to_every_stage_or_a_prefixed_one():
    argv = ["run.name=x", "sft:train.epochs=1", "reward:train.lr=1e-5", "logger=none"]
    assert stage_overrides("sft", argv) == ["run.name=x", "train.epochs=1", "logger=none"]
    assert stage_overrides("reward", argv) == ["run.name=x", "train.lr=1e-5", "logger=none"]
    assert stage_overrides("sft", ["model.path=/a:b"]) == ["model.path=/a:b"], (
        "a colon inside a value is kept"
    )


def test_wandb_is_offline_without_an_api_key(monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    assert wandb_mode(None) == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "secret")
    assert wandb_mode(None) == "online"
    assert wandb_mode("disabled") == "disabled"
