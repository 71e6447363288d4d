"""The experimental `adaptive` ω schedule: the rule, the per-shot losses of the forward pass, logging, resume."""

from __future__ import annotations

import pytest
import torch

from aicd.adaptive_omega import EMA_DECAY, AdaptiveOmega, adaptive_weights, ema_update, token_positions
from aicd.checkpoint import read_metrics
from aicd.config import TrainConfig
from aicd.objectives import omega_weights
from aicd.train import TrainCallback, train
from tests.core.test_train import TINY, StopAt, _config, _examples


def _rule(running: list[float | None], omega: float) -> list[float]:
    """The documented rule, written out again: ω_i = omega·L_i / max_{j<n-1} L_j, the last shot 1."""
    context = running[:-1]
    if any(v is None for v in context):
        return [omega] * len(context) + [1.0]
    return [omega * v / max(context) for v in context] + [1.0]


def _ema(running: list[float | None], step: list[float | None]) -> list[float | None]:
    return [
        old if new is None else (new if old is None else EMA_DECAY * old + (1 - EMA_DECAY) * new)
        for old, new in zip(running, step, strict=True)
    ]


def _same(got: list[float | None], want: list[float | None]) -> bool:
    """Equal lists of running losses: None where nothing was seen, floats within rel 1e-5."""
    return len(got) == len(want) and all(
        (g is None and w is None) or (g is not None and w is not None and g == pytest.approx(w, rel=1e-5))
        for g, w in zip(got, want, strict=True)
    )


def test_rule_scales_context_weights_by_running_loss_and_keeps_the_last_at_one():
    assert adaptive_weights([2.0, 4.0, 1.0, 9.0], 0.5) == pytest.approx([0.25, 0.5, 0.125, 1.0])
    assert adaptive_weights([None, 4.0, 1.0], 0.3) == [0.3, 0.3, 1.0]  # before every position was seen
    assert adaptive_weights([7.0], 0.3) == [1.0]
    assert ema_update([None, 2.0, 3.0], [1.0, None, 5.0], 0.9) == pytest.approx([1.0, 2.0, 3.2])
    assert omega_weights("adaptive", 3, omega=0.2) == [0.2, 0.2, 1.0]  # the start: the paper schedule
    with pytest.raises(ValueError, match="omega must be > 0"):
        omega_weights("adaptive", 3, omega=0.0)
    assert TrainConfig(dataset="x", schedule="adaptive").schedule == "adaptive"


def test_per_shot_nll_comes_from_the_same_forward_and_reweighting_applies_omega():
    from aicd.episodes import build_episode, sample_episode_shots
    from aicd.models import load_model_and_tokenizer
    from aicd.objectives import batch_nll, collate_episodes

    model, tok = load_model_and_tokenizer(TINY, seed=0)
    model.eval()  # no dropout: the three passes below must see the same function
    shots = sample_episode_shots(_examples(), 3, seed=1)[:3]
    adaptive = AdaptiveOmega(3, 0.2)
    adaptive.running = [2.0, 1.0, 5.0]
    used = adaptive.begin_step()
    assert used == pytest.approx([0.2, 0.1, 1.0])
    built = [build_episode(tok, s, "aicd", adaptive.base) for s in shots]
    pairs = [adaptive.reweight(ep) for ep in built]
    for (ep, pos), orig in zip(pairs, built, strict=True):
        for w, p, w0 in zip(ep.loss_weights, pos, orig.loss_weights, strict=True):
            assert w == pytest.approx(used[p] if w0 else 0.0)  # every target token carries this step's ω_i
    episodes = [ep for ep, _ in pairs]
    batch = collate_episodes(episodes)
    plain, _ = batch_nll(model, batch)
    batch["shot_onehot"] = adaptive.one_hot([pos for _, pos in pairs], batch["input_ids"].shape[1])
    per_shot, _ = batch_nll(model, batch)
    assert per_shot.shape == (3, 3)
    torch.testing.assert_close(per_shot.sum(1), plain)
    # independently: full logits, token NLL, summed by the shot each target token belongs to
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    nll = torch.nn.functional.cross_entropy(
        logits[:, :-1].transpose(1, 2).float(), batch["input_ids"][:, 1:], reduction="none"
    )
    for b, (ep, pos) in enumerate(pairs):
        for p in range(3):
            want = sum(
                float(nll[b, t - 1]) * ep.loss_weights[t]
                for t in range(1, len(ep.input_ids))
                if pos[t] == p and ep.loss_weights[t] > 0
            )
            assert float(per_shot[b, p].detach()) == pytest.approx(want, rel=1e-4, abs=1e-5)


def test_token_positions_are_end_aligned_when_early_shots_were_dropped():
    from aicd.episodes import build_episode, sample_episode_shots
    from aicd.models import load_tokenizer

    tok = load_tokenizer(TINY)
    shots = sample_episode_shots(_examples(), 4, seed=2)[0]
    full = build_episode(tok, shots, "aicd", [0.1, 0.1, 0.1, 1.0])
    cut = build_episode(tok, shots, "aicd", [0.1, 0.1, 0.1, 1.0], max_length=len(full) - 5)
    assert cut.n_dropped >= 1
    pos = token_positions(cut, 4)
    last = [s for s in cut.spans if s.kind == "target"][-1]
    assert set(pos[last.start : last.end]) == {3}
    first = [s for s in cut.spans if s.kind == "target"][0]
    assert set(pos[first.start : first.end]) == {cut.n_dropped}


class _Logs(TrainCallback):
    def __init__(self) -> None:
        self.steps: list[int] = []

    def on_log(self, step: int, metrics: dict) -> None:
        self.steps.append(step)


def test_adaptive_run_logs_the_omega_the_rule_gives_from_the_logged_running_losses(tmp_path):
    logs = _Logs()
    cfg = _config(tmp_path, "adaptive", schedule="adaptive", omega=0.5, max_steps=5)
    result = train(cfg, examples=_examples(), callback=logs, progress=False)
    records = read_metrics(result.run_dir / "metrics.jsonl")
    assert [m["step"] for m in records] == [1, 2, 3, 4, 5] == logs.steps  # one record per step
    assert records[0]["omega"] == [0.5, 0.5, 1.0]  # nothing seen yet: the paper schedule
    running: list[float | None] = [None, None, None]
    for m in records:
        assert _same(m["omega_running_nll"], running)  # the EMA carried over from the last step
        assert m["omega"] == pytest.approx(_rule(m["omega_running_nll"], 0.5))
        assert all(v is not None and v > 0 for v in m["shot_nll"])
        running = _ema(running, m["shot_nll"])
    assert max(records[-1]["omega"][:2]) == pytest.approx(0.5)
    assert records[-1]["omega"][:2] != [0.5, 0.5]  # the context weights did adapt


def test_fixed_schedule_runs_log_no_adaptive_fields(tmp_path):
    result = train(_config(tmp_path, "paper", max_steps=2), examples=_examples(), progress=False)
    assert all("omega" not in m for m in read_metrics(result.run_dir / "metrics.jsonl"))


def test_resume_continues_the_same_running_losses(tmp_path):
    examples = _examples()
    kw = dict(schedule="adaptive", omega=0.5, max_steps=6)
    full = train(_config(tmp_path, "full", save_every=3, **kw), examples=examples, progress=False)
    cfg = _config(tmp_path, "cut", **kw)
    part = train(cfg, examples=examples, callback=StopAt(poll=8), progress=False)  # stops in step 4
    assert part.stopped and part.step == 3
    saved = torch.load(cfg.run_dir / "checkpoint-3" / "trainer_state.pt", weights_only=False)
    assert saved["adaptive_omega"]["running"][0] is not None
    done = train(cfg, examples=examples, resume=True, progress=False)
    assert done.step == 6
    ref, got = read_metrics(full.run_dir / "metrics.jsonl"), read_metrics(cfg.run_dir / "metrics.jsonl")
    assert [m["step"] for m in got] == [1, 2, 3, 4, 5, 6]
    for a, b in zip(ref, got, strict=True):
        assert _same(b["omega_running_nll"], a["omega_running_nll"])
        assert b["omega"] == pytest.approx(a["omega"], rel=1e-5)
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)


def test_tracker_gets_the_omega_of_every_step_one_scalar_per_shot(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = _config(tmp_path, "tb", schedule="adaptive", omega=0.5, max_steps=3, report_to="tensorboard")
    result = train(cfg, examples=_examples(), progress=False)
    metrics = read_metrics(result.run_dir / "metrics.jsonl")
    scalars: dict[str, list] = {}
    for path in sorted((result.run_dir / "tracking").rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(path.parent))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend(acc.Scalars(tag))
    for i in range(3):
        assert [(e.step, round(e.value, 5)) for e in scalars[f"omega/{i}"]] == [
            (m["step"], round(m["omega"][i], 5)) for m in metrics
        ]
