"""Training loop: learning, resume, cancellation, gradient accumulation, LoRA, and the CLI's config errors."""

from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path

import pytest
import torch

from aicd.checkpoint import read_metrics
from aicd.config import TrainConfig
from aicd.data.record import Example, Rationale
from aicd.train import TrainCallback, train

TINY = "tiny:gpt2?n_layer=1&n_embd=32&n_head=2&n_positions=512"
TINY_NO_DROPOUT = TINY + "&resid_pdrop=0&embd_pdrop=0&attn_pdrop=0"


def _examples(n: int = 16, seed: int = 0) -> list[Example]:
    """Short arithmetic problems with rationales of varying length (so micro-batches differ)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        terms = [rng.randint(1, 9) for _ in range(rng.randint(2, 4))]
        text = " + ".join(map(str, terms))
        rationale = f"{text} = {sum(terms)}. So, the answer is {sum(terms)}."
        out.append(
            Example(
                id=f"ex{i}",
                question=f"What is {text}?",
                answer=str(sum(terms)),
                rationales=[Rationale(text=rationale, source="gold")],
            )
        )
    return out


def _config(tmp_path: Path, name: str, **kw) -> TrainConfig:
    base = dict(
        name=name,
        output_dir=str(tmp_path),
        model=TINY,
        n_shots=3,
        lr=3e-3,
        warmup_ratio=0.0,
        batch_size=4,
        micro_batch_size=2,
        max_length=256,
        max_steps=6,
        seed=0,
        mixed_precision="no",  # float32 everywhere, so the exactness checks also hold on a GPU machine
    )
    return TrainConfig(**(base | kw))


def _state_dict(path: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path).state_dict()


def test_training_lowers_loss_and_changes_every_parameter(tmp_path):
    from aicd.episodes import build_episode, sample_episode_shots
    from aicd.models import load_model_and_tokenizer
    from aicd.objectives import episode_loss

    examples = _examples()
    cfg = _config(tmp_path, "learn", max_steps=12, lr=1e-2, warmup_ratio=0.25, min_lr_ratio=0.1)
    # the same initial weights that train() builds
    before, tok = load_model_and_tokenizer(cfg.model, seed=cfg.seed)
    initial = {k: v.clone() for k, v in before.state_dict().items()}
    episodes = [
        build_episode(tok, s, "aicd", [0.1, 0.1, 1.0]) for s in sample_episode_shots(examples, 3, seed=9)
    ]

    result = train(cfg, examples=examples, progress=False)

    after = type(before).from_pretrained(result.final_dir)
    before.eval(), after.eval()
    with torch.no_grad():
        assert episode_loss(after, episodes).item() < 0.8 * episode_loss(before, episodes).item()
    trained = after.state_dict()
    unchanged = [k for k, v in initial.items() if torch.equal(v, trained[k])]
    assert unchanged == []
    metrics = read_metrics(result.run_dir / "metrics.jsonl")
    assert [m["step"] for m in metrics] == list(range(1, 13))
    assert {"step", "epoch", "loss", "lr", "grad_norm", "tokens_per_s", "real_token_frac"} <= set(metrics[0])
    assert all(0 < m["real_token_frac"] <= 1 and m["tokens_per_s"] > 0 for m in metrics)
    lrs = [m["lr"] for m in metrics]  # linear warmup over 3 steps, then cosine down to min_lr_ratio·lr
    assert lrs[:4] == pytest.approx([0.0, 1e-2 / 3, 2e-2 / 3, 1e-2])
    assert all(a > b for a, b in zip(lrs[3:], lrs[4:], strict=False)) and lrs[-1] > 1e-3
    assert (result.final_dir / "config.yaml").is_file() and (result.run_dir / "config.yaml").is_file()
    # the thread count torch really used is on record (issue 13), in the metrics and the run's final state
    assert {m["threads"] for m in metrics} == {torch.get_num_threads()}
    assert (
        json.loads((result.final_dir / "train_done.json").read_text())["threads"] == torch.get_num_threads()
    )


class StopAt(TrainCallback):
    """Asks to stop on the n-th should_stop() poll (one poll per micro-batch) and records the hooks."""

    def __init__(self, poll: int | None = None) -> None:
        self.poll, self.polls, self.starts, self.checkpoints = poll, 0, [], []

    def on_start(self, total_steps: int, start_step: int) -> None:
        self.starts.append((total_steps, start_step))

    def on_checkpoint(self, step: int, path: Path) -> None:
        self.checkpoints.append((step, path.name))

    def should_stop(self) -> bool:
        self.polls += 1
        return self.poll is not None and self.polls >= self.poll


def test_stop_then_resume_matches_an_uninterrupted_run(tmp_path):
    examples = _examples()
    full = train(_config(tmp_path, "full", save_every=3), examples=examples, progress=False)

    stopper = StopAt(poll=8)  # 2 micro-batches per step: poll 8 is the middle of step 4
    cfg = _config(tmp_path, "cut")
    part = train(cfg, examples=examples, callback=stopper, progress=False)
    assert part.stopped and part.step == 3 and part.final_dir is None
    assert stopper.checkpoints == [(3, "checkpoint-3")]
    assert not (cfg.run_dir / "final").exists()

    def saved(run_dir: Path, name: str) -> dict:
        return torch.load(run_dir / "checkpoint-3" / name, weights_only=False)

    ref, got = saved(full.run_dir, "trainer_state.pt"), saved(cfg.run_dir, "trainer_state.pt")
    assert got["step"] == ref["step"] == 3 and got["position"] == ref["position"]
    # accelerate's save_state: the scheduler (a registered object) and the optimizer
    ref_sched, got_sched = (
        saved(full.run_dir, "custom_checkpoint_0.pkl"),
        saved(cfg.run_dir, "custom_checkpoint_0.pkl"),
    )
    assert got_sched["last_epoch"] == ref_sched["last_epoch"] == 3
    ref_opt, got_opt = saved(full.run_dir, "optimizer.bin"), saved(cfg.run_dir, "optimizer.bin")
    for key, state in ref_opt["state"].items():
        torch.testing.assert_close(got_opt["state"][key]["exp_avg"], state["exp_avg"])
        torch.testing.assert_close(got_opt["state"][key]["exp_avg_sq"], state["exp_avg_sq"])

    resumer = StopAt()
    done = train(cfg, examples=examples, callback=resumer, resume=True, progress=False)
    assert resumer.starts == [(6, 3)]
    assert not done.stopped and done.step == 6
    ref_w, got_w = _state_dict(full.final_dir), _state_dict(done.final_dir)
    for key in ref_w:
        torch.testing.assert_close(got_w[key], ref_w[key], rtol=1e-5, atol=1e-6)
    ref_m, got_m = read_metrics(full.run_dir / "metrics.jsonl"), read_metrics(cfg.run_dir / "metrics.jsonl")
    assert [m["step"] for m in got_m] == [1, 2, 3, 4, 5, 6]
    assert [m["loss"] for m in got_m] == pytest.approx([m["loss"] for m in ref_m], rel=1e-5)


def test_resume_of_a_finished_run_does_nothing_and_fresh_run_refuses_existing_dir(tmp_path):
    from aicd.errors import AICDError

    examples = _examples(8)
    cfg = _config(tmp_path, "once", max_steps=3, save_every=1, keep_checkpoints=2)
    first = train(cfg, examples=examples, progress=False)
    assert sorted(p.name for p in cfg.run_dir.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-3"]
    assert not list(cfg.run_dir.glob(".tmp-*"))  # atomic writes leave no temp folders
    again = train(cfg, examples=examples, resume=True, progress=False)
    assert (again.step, again.total_steps, again.stopped) == (first.step, first.total_steps, False)
    assert len(read_metrics(cfg.run_dir / "metrics.jsonl")) == 3
    with pytest.raises(AICDError, match="already has outputs"):
        train(cfg, examples=examples, progress=False)


@pytest.mark.parametrize("reduction", ["sum", "token"])
def test_accumulated_gradient_equals_full_batch_gradient(tmp_path, reduction):
    """One step over all 16 episodes: 1 micro-batch of 16 vs 4 of 4 vs 16 of 1 give the same loss and
    gradient norm (episode lengths differ, so per-micro-batch normalisation would not). Weights after one
    Adam step are ~lr·sign(g), too insensitive to the gradient's scale to be the check."""
    examples = _examples()
    runs = []
    for micro in (16, 4, 1):
        cfg = _config(
            tmp_path,
            f"acc-{reduction}-{micro}",
            model=TINY_NO_DROPOUT,
            batch_size=16,
            micro_batch_size=micro,
            max_steps=1,
            reduction=reduction,
            max_grad_norm=None,
        )
        result = train(cfg, examples=examples, progress=False)
        runs.append(result.last_metrics)
    m_full, *others = runs
    for metrics in others:
        assert metrics["episodes"] == 16
        assert metrics["loss"] == pytest.approx(m_full["loss"], rel=1e-5)
        assert metrics["grad_norm"] == pytest.approx(m_full["grad_norm"], rel=1e-5)


def test_accumulation_matches_a_direct_full_batch_gradient():
    """The normalisation used by train() (global totals) against autograd on one big batch, to 1e-5."""
    from aicd.episodes import build_episode, sample_episode_shots
    from aicd.models import load_model_and_tokenizer
    from aicd.objectives import batch_nll, collate_episodes, reduce_loss

    model, tok = load_model_and_tokenizer(TINY_NO_DROPOUT, seed=0)
    episodes = [
        build_episode(tok, s, "aicd", [0.1, 0.1, 1.0]) for s in sample_episode_shots(_examples(), 3, seed=0)
    ]
    episodes = episodes[:6]
    for reduction in ("sum", "token"):
        model.zero_grad()
        nll, w = batch_nll(model, collate_episodes(episodes))
        reduce_loss(nll, w, reduction).backward()
        full = [p.grad.clone() for p in model.parameters()]
        model.zero_grad()
        total_w = sum(sum(ep.loss_weights[1:]) for ep in episodes)
        for part in (episodes[:1], episodes[1:4], episodes[4:]):  # uneven micro-batches
            nll, w = batch_nll(model, collate_episodes(part))
            reduce_loss(nll, w, reduction, n_episodes=len(episodes), total_weight=total_w).backward()
        for g_full, p in zip(full, model.parameters(), strict=True):
            # float32 sums in another order differ by ~1e-7 of the gradient's scale; the #34191 bug is O(1)
            atol = 1e-5 * float(g_full.abs().max()) + 1e-9
            torch.testing.assert_close(p.grad, g_full, rtol=1e-5, atol=atol)


def test_resume_of_a_hub_model_run_loads_the_tokenizer_from_the_checkpoint(tmp_path):
    from aicd.models import load_model_and_tokenizer

    hub = tmp_path / "hub" / "student"  # stands in for a hub id: a local folder the resume must not need
    model, tok = load_model_and_tokenizer(TINY, seed=0)
    model.save_pretrained(hub)
    tok.save_pretrained(hub)
    examples = _examples(8)
    cfg = _config(tmp_path, "hub-run", model=str(hub), max_steps=3)
    assert train(cfg, examples=examples, callback=StopAt(poll=3), progress=False).step == 1
    hub.rename(tmp_path / "hub" / "gone")  # offline: the model id no longer resolves
    done = train(cfg, examples=examples, resume=True, progress=False)
    assert done.step == 3 and not done.stopped
    assert (done.final_dir / "tokenizer_config.json").is_file()


def test_a_model_that_is_not_a_causal_lm_is_one_clear_error(tmp_path):
    from transformers import T5Config

    from aicd.errors import AICDError
    from aicd.models import load_model_and_tokenizer, tiny_tokenizer

    folder = tmp_path / "t5"
    T5Config(d_model=8, d_ff=8, num_layers=1, num_heads=1, d_kv=8).save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    with pytest.raises(AICDError, match=r"'.*t5' is not a causal language model"):
        load_model_and_tokenizer(str(folder))
    with pytest.raises(AICDError, match="cannot load"):
        load_model_and_tokenizer(str(tmp_path / "missing"))
    cfg = _config(tmp_path, "t5-run", model=str(folder))
    with pytest.raises(AICDError, match="not a causal language model"):
        train(cfg, examples=_examples(4), progress=False)
    assert not cfg.run_dir.exists()


def test_lora_trains_adapters_saves_merged_weights_and_resumes(tmp_path):
    from transformers import AutoModelForCausalLM

    from aicd.models import load_model_and_tokenizer

    spec = "tiny:llama?hidden_size=32&intermediate_size=64&num_attention_heads=2&num_key_value_heads=1"
    lora = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}
    examples = _examples(8)
    result = train(
        _config(tmp_path, "lora", model=spec, max_steps=3, lr=1e-2, lora=lora),
        examples=examples,
        progress=False,
    )
    initial = load_model_and_tokenizer(spec, seed=0)[0].state_dict()
    merged = AutoModelForCausalLM.from_pretrained(result.final_dir).state_dict()
    assert set(merged) == set(initial)  # plain weights, no lora_A/lora_B keys
    changed = {k for k in initial if not torch.equal(initial[k], merged[k])}
    assert changed and all("q_proj" in k or "v_proj" in k for k in changed)
    assert result.step == 3 and json.loads((result.final_dir / "train_done.json").read_text())["step"] == 3

    cfg = _config(tmp_path, "lora-cut", model=spec, max_steps=3, lr=1e-2, lora=lora)
    assert train(cfg, examples=examples, callback=StopAt(poll=3), progress=False).step == 1
    assert (cfg.run_dir / "checkpoint-1" / "adapter_config.json").is_file()  # the adapter, not a full copy
    resumed = train(cfg, examples=examples, resume=True, progress=False)
    again = AutoModelForCausalLM.from_pretrained(resumed.final_dir).state_dict()
    for key in merged:
        torch.testing.assert_close(again[key], merged[key], rtol=1e-5, atol=1e-6)


def test_cli_ctrl_c_checkpoints_and_exits_130(tmp_path):
    import signal
    import subprocess
    import time

    from aicd.data.jsonl import write_examples

    data = tmp_path / "train.jsonl"
    write_examples(data, _examples(16))
    config = tmp_path / "run.yaml"
    config.write_text(
        f"name: sig\noutput_dir: {tmp_path / 'runs'}\nmodel: '{TINY}'\nn_shots: 3\ndataset: {data}\n"
        "max_steps: 100000\nbatch_size: 2\nmicro_batch_size: 1\nlr: 1.0e-3\n"
    )
    metrics = tmp_path / "runs" / "sig" / "metrics.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "aicd", "train", str(config), "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not (metrics.exists() and metrics.read_text().count("\n") >= 1) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "continue with --resume" in out and "Traceback" not in err
    assert "Writing model shards" not in err  # --no-progress silences the hub's bars too
    step = read_metrics(metrics)[-1]["step"]
    assert (tmp_path / "runs" / "sig" / f"checkpoint-{step}" / "trainer_state.pt").is_file()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (["objective=distill"], "objective"),
        (["schedule=custom", "weights=[0.1,1.0]"], "weights"),
        (["schedule=custom", "weights=[0.1,-0.5,0.2,1.0]"], "weights"),
    ],
)
def test_cli_rejects_bad_config_before_writing(tmp_path, monkeypatch, capsys, overrides, field):
    from aicd.cli import main

    config = tmp_path / "bad.yaml"
    config.write_text(f"name: bad\noutput_dir: {tmp_path / 'runs'}\nmodel: tiny:gpt2\nn_shots: 4\n")
    args = ["aicd", "train", str(config), "--no-progress"] + [a for o in overrides for a in ("--set", o)]
    monkeypatch.setattr(sys, "argv", args)
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert field in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_cli_dataset_line_missing_question_is_one_message_and_writes_nothing(tmp_path, monkeypatch, capsys):
    from aicd.cli import main
    from aicd.data.jsonl import write_examples

    data = tmp_path / "train.jsonl"
    write_examples(data, _examples(3))
    with data.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"id": "broken", "answer": "4", "rationales": [{"text": "2 + 2 = 4."}]}) + "\n")
    config = tmp_path / "run.yaml"
    config.write_text(f"name: bad-data\noutput_dir: {tmp_path / 'runs'}\nmodel: '{TINY}'\nn_shots: 2\n")
    args = ["aicd", "train", str(config), "--no-progress", "--set", f"dataset={data}"]
    monkeypatch.setattr(sys, "argv", args)
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert f"{data}:4" in err and "question" in err  # the line and the field
    assert not (tmp_path / "runs").exists()


def test_gradient_checkpointing_gives_the_same_step(tmp_path, monkeypatch):
    import torch.utils.checkpoint
    import transformers.modeling_utils

    original = torch.utils.checkpoint.checkpoint
    calls = []

    def counting_checkpoint(*args, **kwargs):
        calls.append(kwargs.get("use_reentrant"))
        return original(*args, **kwargs)

    # transformers binds `checkpoint` when enabling; patch both names so either path is counted
    monkeypatch.setattr(torch.utils.checkpoint, "checkpoint", counting_checkpoint)
    monkeypatch.setattr(transformers.modeling_utils, "checkpoint", counting_checkpoint, raising=False)
    examples = _examples(8)
    metrics, counts = [], []
    for gc in (False, True):
        cfg = _config(tmp_path, f"gc-{gc}", model=TINY_NO_DROPOUT, max_steps=1, gradient_checkpointing=gc)
        calls.clear()
        metrics.append(train(cfg, examples=examples, progress=False).last_metrics)
        counts.append(len(calls))
    # checkpointing really ran: every layer (n_layer=1) of each of the 2 micro-batches, non-reentrant
    assert counts[0] == 0 and counts[1] >= 2 and set(calls) == {False}
    assert metrics[1]["loss"] == pytest.approx(metrics[0]["loss"], rel=1e-5)
    assert metrics[1]["grad_norm"] == pytest.approx(metrics[0]["grad_norm"], rel=1e-4)


def test_cli_trains_from_a_jsonl_dataset(tmp_path, monkeypatch, capsys):
    from aicd.cli import main
    from aicd.data.jsonl import write_examples

    data = tmp_path / "train.jsonl"
    write_examples(data, _examples(8))
    config = tmp_path / "run.yaml"
    config.write_text(
        f"name: cli\noutput_dir: {tmp_path / 'runs'}\nmodel: '{TINY}'\nn_shots: 3\nmax_steps: 5\n"
    )
    args = [
        "aicd",
        "train",
        str(config),
        "--no-progress",
        "--set",
        f"dataset={data}",
        "--set",
        "max_steps=2",
        "--set",
        "batch_size=2",
        "--set",
        "micro_batch_size=1",
        "--set",
        "lr=1e-3",
    ]
    monkeypatch.setattr(sys, "argv", args)
    main()
    assert "trained 2 steps" in capsys.readouterr().out
    run_dir = tmp_path / "runs" / "cli"
    assert [m["step"] for m in read_metrics(run_dir / "metrics.jsonl")] == [1, 2]
    saved = (run_dir / "final" / "config.yaml").read_text()
    assert "max_steps: 2" in saved and "lr: 0.001" in saved and str(data) in saved


def test_eval_every_logs_accuracy_and_leaves_training_unchanged(tmp_path, monkeypatch):
    """Accuracy lands in the metrics at every eval step and at the end; the losses (dropout on) are those
    of a run without it, so model mode and RNG are restored around the evaluation."""
    import aicd.generation.hf

    examples, held_out = _examples(16), _examples(8, seed=1)
    for i, ex in enumerate(held_out):
        ex.id = f"test{i}"
    plain = train(_config(tmp_path, "plain"), examples=examples, progress=False)

    real_stream = aicd.generation.hf.stream_generate
    right = {ex.question: ex.answer for ex in held_out[:6:2]}  # 3 of the 6 scored items answered correctly
    prompts_seen: list[str] = []

    def half_right(model, tokenizer, prompts, **kw):
        list(
            real_stream(model, tokenizer, prompts, **kw)
        )  # the student really generates (eval mode, KV cache)
        texts = [p if isinstance(p, str) else tokenizer.decode(p) for p in prompts]
        prompts_seen.extend(texts)
        last_q = [t.rsplit("Question: ", 1)[1].split("\nAnswer:")[0] for t in texts]
        return enumerate(
            f" So, the answer is {right[q]}." if q in right else " I do not know." for q in last_q
        )

    monkeypatch.setattr(aicd.generation.hf, "stream_generate", half_right)
    cfg = _config(tmp_path, "evaluated", eval_every=4, eval_limit=6, eval_shots=1)
    done = train(cfg, examples=examples, eval_examples=held_out, progress=False)

    metrics = read_metrics(done.run_dir / "metrics.jsonl")
    assert [m["loss"] for m in metrics] == pytest.approx(
        [m["loss"] for m in read_metrics(plain.run_dir / "metrics.jsonl")], rel=1e-6
    )
    scored = {m["step"]: m for m in metrics if "eval_accuracy" in m}
    assert sorted(scored) == [4, 6]  # every 4 steps and at the end (max_steps=6)
    for m in scored.values():
        assert m["eval_accuracy"] == pytest.approx(0.5)
        assert m["eval_n"] == 6 and m["eval_invalid"] == 3 and m["eval_held_out"] is True
    assert len(prompts_seen) == 12 and all(t.count("Question: ") == 2 for t in prompts_seen)  # 1-shot


def test_eval_every_on_training_questions_says_they_are_not_held_out(tmp_path):
    examples = _examples(16)
    cfg = _config(tmp_path, "self", eval_every=3, eval_limit=4, eval_max_new_tokens=8)
    done = train(cfg, examples=examples, eval_examples=examples[:4], progress=False)
    scored = [m for m in read_metrics(done.run_dir / "metrics.jsonl") if "eval_accuracy" in m]
    assert [m["step"] for m in scored] == [3, 6]
    assert all(m["eval_held_out"] is False and 0.0 <= m["eval_accuracy"] <= 1.0 for m in scored)


def _poison_micro_batches(monkeypatch, bad: set[int]) -> None:
    """Make the loss NaN on the given forward passes (1-based; 2 per step with batch 4, micro-batch 2)."""
    import aicd.objectives

    real, calls = aicd.objectives.batch_nll, []

    def poisoned(model, batch):
        nll, weight = real(model, batch)
        calls.append(1)
        return (nll * float("nan") if len(calls) in bad else nll), weight

    monkeypatch.setattr(aicd.objectives, "batch_nll", poisoned)


def test_a_nan_loss_fails_the_run_with_the_step_and_the_last_finite_loss(tmp_path, monkeypatch):
    from aicd.train import TrainingDiverged

    _poison_micro_batches(monkeypatch, {5})  # step 3
    cfg = _config(tmp_path, "nan")
    with pytest.raises(TrainingDiverged) as info:
        train(cfg, examples=_examples(), progress=False)
    metrics = read_metrics(cfg.run_dir / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1, 2]  # nothing logged for the bad step
    message = str(info.value)
    assert "loss is nan at step 3" in message
    assert f"last finite loss {metrics[-1]['loss']:.6g} at step 2" in message
    assert not (cfg.run_dir / "final").exists()


def test_max_nonfinite_steps_skips_a_bad_step_and_finishes(tmp_path, monkeypatch):
    _poison_micro_batches(monkeypatch, {5})
    cfg = _config(tmp_path, "nan-tolerated", max_nonfinite_steps=2)
    result = train(cfg, examples=_examples(), progress=False)
    metrics = read_metrics(cfg.run_dir / "metrics.jsonl")
    assert result.step == 6 and [m["step"] for m in metrics] == [1, 2, 3, 4, 5, 6]
    assert all(math.isfinite(m["loss"]) and math.isfinite(m["grad_norm"]) for m in metrics)
    weights = _state_dict(result.final_dir)
    assert all(torch.isfinite(v).all() for v in weights.values())  # the NaN step never reached the weights


def test_report_to_tensorboard_writes_params_and_every_metrics_line(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    cfg = _config(
        tmp_path,
        "tb",
        report_to="tensorboard",
        max_steps=4,
        eval_every=2,
        eval_limit=2,
        eval_max_new_tokens=4,
    )
    result = train(cfg, examples=_examples(), eval_examples=_examples(4, seed=1), progress=False)
    metrics = read_metrics(result.run_dir / "metrics.jsonl")
    events = sorted((result.run_dir / "tracking").rglob("events.out.tfevents.*"))
    assert events, "no TensorBoard event file under run_dir/tracking"
    scalars: dict[str, list] = {}
    hparams = b""
    for path in events:
        acc = EventAccumulator(str(path.parent))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend(acc.Scalars(tag))
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "hparams":
                    hparams += value.metadata.plugin_data.content
    assert [(e.step, round(e.value, 3)) for e in scalars["loss"]] == [
        (m["step"], round(m["loss"], 3)) for m in metrics
    ]
    assert [e.step for e in scalars["eval_accuracy"]] == [2, 4]  # held-out accuracy, at each evaluation
    assert b"distributed.strategy" in hparams and b"objective" in hparams  # the config, flattened


def test_report_to_mlflow_logs_params_and_metrics_to_a_file_store(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    store = f"file://{tmp_path / 'mlruns'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv(
        "MLFLOW_ALLOW_FILE_STORE", "true"
    )  # mlflow 3 keeps the offline file store behind a flag
    cfg = _config(tmp_path, "mlf", report_to="mlflow", max_steps=3)
    result = train(cfg, examples=_examples(), progress=False)
    client = MlflowClient(tracking_uri=store)
    (experiment,) = [e for e in client.search_experiments() if e.name == "aicd"]
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "mlf" and run.info.status == "FINISHED"
    assert run.data.params["lr"] == "0.003" and run.data.params["distributed.strategy"] == "ddp"
    history = client.get_metric_history(run.info.run_id, "loss")
    metrics = read_metrics(result.run_dir / "metrics.jsonl")
    assert [(h.step, h.value) for h in history] == [(m["step"], pytest.approx(m["loss"])) for m in metrics]


def test_report_to_without_its_package_names_the_field_before_writing(tmp_path, monkeypatch):
    import accelerate.tracking

    from aicd.errors import ConfigError

    monkeypatch.setattr(accelerate.tracking, "get_available_trackers", lambda: [])
    cfg = _config(tmp_path, "no-wandb", report_to="wandb")
    with pytest.raises(ConfigError, match=r"report_to: wandb needs the wandb package"):
        train(cfg, examples=_examples(4), progress=False)
    assert not cfg.run_dir.exists()


def test_a_checkpoint_in_the_older_single_file_layout_still_resumes(tmp_path):
    """Runs checkpointed before accelerate's save_state (optimizer, scheduler and RNG inside
    trainer_state.pt) resume to the same weights as an uninterrupted run."""
    examples = _examples()
    full = train(_config(tmp_path, "full", model=TINY_NO_DROPOUT), examples=examples, progress=False)
    cfg = _config(tmp_path, "old", model=TINY_NO_DROPOUT)
    assert train(cfg, examples=examples, callback=StopAt(poll=7), progress=False).step == 3
    ckpt = cfg.run_dir / "checkpoint-3"
    rng = torch.load(ckpt / "random_states_0.pkl", weights_only=False)
    legacy = torch.load(ckpt / "trainer_state.pt") | {
        "optimizer": torch.load(ckpt / "optimizer.bin", weights_only=False),
        "scheduler": torch.load(ckpt / "custom_checkpoint_0.pkl", weights_only=False),
        "scaler": None,
        "rng": {
            "python": rng["random_state"],
            "numpy": rng["numpy_random_seed"],
            "torch": rng["torch_manual_seed"],
        },
    }
    for name in ("random_states_0.pkl", "optimizer.bin", "custom_checkpoint_0.pkl"):
        (ckpt / name).unlink()
    torch.save(legacy, ckpt / "trainer_state.pt")

    done = train(cfg, examples=examples, resume=True, progress=False)
    assert done.step == 6
    ref_w, got_w = _state_dict(full.final_dir), _state_dict(done.final_dir)
    for key in ref_w:
        torch.testing.assert_close(got_w[key], ref_w[key], rtol=1e-5, atol=1e-6)
