"""The AICD loss against an independent n-forward-pass computation, and ω schedules."""

from __future__ import annotations

import math

import pytest
import torch

from aicd import Shot, build_episode, episode_loss
from aicd.objectives import omega_weights

SHOTS = [
    Shot("Tom has 3 apples and buys 4 more. How many?", "3 + 4 = 7. So, the answer is 7.", "7"),
    Shot("A box holds 6 pens. How many pens in 2 boxes?", "6 * 2 = 12. So, the answer is 12.", "12"),
    Shot("Ann had 10 cards and gave away 4. How many are left?", "10 - 4 = 6. So, the answer is 6.", "6"),
    Shot("Sam reads 5 pages a day for 3 days. Pages read?", "5 * 3 = 15. So, the answer is 15.", "15"),
]
WEIGHTS = [0.1, 0.3, 0.6, 1.0]


def _logprob_of(model, tokenizer, prefix: str, target: str, eos: bool) -> float:
    """log p(target | prefix) from one separate forward pass over prefix + target (+ eos)."""
    enc = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    prefix_ids, target_ids = enc(prefix), enc(target) + ([tokenizer.eos_token_id] if eos else [])
    ids = torch.tensor([prefix_ids + target_ids])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits.float(), -1)[0]
    start = len(prefix_ids)
    return sum(logp[start + j - 1, t].item() for j, t in enumerate(target_ids))


def _n_pass_loss(model, tokenizer, shots, weights, answers_only=False) -> float:
    """Σ_i ω_i · −log p(y_i | x_1, y_1, …, x_i), one forward pass per shot."""
    total, context = 0.0, ""
    for i, shot in enumerate(shots):
        prefix = context + ("" if i == 0 else "\n\n") + f"Question: {shot.question}\nAnswer:"
        y = " " + (shot.answer if answers_only else shot.rationale)
        last = i == len(shots) - 1
        total += weights[i] * -_logprob_of(model, tokenizer, prefix, y, eos=last)
        context = prefix + y
    return total


@pytest.mark.parametrize("arch", ["tiny:gpt2", "tiny:llama"])
def test_sum_loss_equals_n_separate_passes(arch):
    from aicd.models import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(arch, seed=1)
    model.eval()
    ep = build_episode(tok, SHOTS, objective="aicd", weights=WEIGHTS)
    with torch.no_grad():
        one_pass = episode_loss(model, [ep], reduction="sum").item()
    expected = _n_pass_loss(model, tok, SHOTS, WEIGHTS)
    assert one_pass == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("arch", ["tiny:gpt2", "tiny:llama"])
def test_head_on_supervised_positions_only_matches_full_logits(arch):
    """batch_nll's fast path (LM head on the supervised positions only) gives the loss and gradients of the
    full-logits computation, also through a LoRA wrapper; a model with an unknown head falls back."""
    from peft import LoraConfig, get_peft_model

    from aicd.models import load_model_and_tokenizer
    from aicd.objectives import _decoder_and_head, batch_nll, collate_episodes, weighted_nll

    model, tok = load_model_and_tokenizer(arch, seed=2)
    model.eval()  # no dropout: the two computations must see the same network
    episodes = [
        build_episode(tok, SHOTS[:3], objective="aicd", weights=WEIGHTS[:3]),
        build_episode(tok, SHOTS[1:], objective="condgen", weights=WEIGHTS[:3]),
    ]
    batch = collate_episodes(episodes, tok.pad_token_id)

    def loss_and_grads(fn) -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad()
        nll = fn()
        nll.sum().backward()
        return nll.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    assert _decoder_and_head(model) is not None
    fast, fast_grads = loss_and_grads(lambda: batch_nll(model, batch)[0])
    full, full_grads = loss_and_grads(
        lambda: weighted_nll(
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits,
            batch["input_ids"],
            batch["loss_weights"],
        )
    )
    assert fast.tolist() == pytest.approx(full.tolist(), rel=1e-5)
    assert len(fast_grads) == len(full_grads) == len(list(model.parameters()))
    for a, b in zip(fast_grads, full_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)  # chunked head: other summation order

    lora = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM"))
    assert _decoder_and_head(lora) is not None
    assert batch_nll(lora, batch)[0].tolist() == pytest.approx(full.tolist(), rel=1e-5)  # LoRA B starts at 0

    model.config.model_type = "gemma2"  # soft-capped logits: the head alone would be wrong, so no fast path
    assert _decoder_and_head(model) is None
    assert batch_nll(model, batch)[0].tolist() == pytest.approx(full.tolist(), rel=1e-5)


def test_sum_reduction_averages_episodes_and_token_reduction_normalises(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    model.eval()
    a = build_episode(tok, SHOTS, "aicd", WEIGHTS)
    b = build_episode(tok, SHOTS[:2], "aicd", [0.5, 1.0])
    with torch.no_grad():
        la, lb = episode_loss(model, [a]).item(), episode_loss(model, [b]).item()
        both = episode_loss(model, [a, b], "sum").item()
        tok_loss = episode_loss(model, [a, b], "token").item()
    assert both == pytest.approx((la + lb) / 2, rel=1e-4)
    total_w = sum(a.loss_weights) + sum(b.loss_weights)
    assert tok_loss == pytest.approx((la + lb) / total_w, rel=1e-4)


def test_condgen_weights_only_the_last_rationale(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    model.eval()
    ep = build_episode(tok, SHOTS, objective="condgen", weights=WEIGHTS)
    weighted = {s.shot for s in ep.spans if s.weight > 0}
    assert weighted == {len(SHOTS) - 1}
    with torch.no_grad():
        got = episode_loss(model, [ep]).item()
    assert got == pytest.approx(_n_pass_loss(model, tok, SHOTS, [0, 0, 0, 1.0]), rel=1e-4)


def test_lm_weights_every_token_after_the_first(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    model.eval()
    ep = build_episode(tok, SHOTS, objective="lm")
    assert ep.loss_weights[0] == 0.0 and all(w == 1.0 for w in ep.loss_weights[1:])
    ids = torch.tensor([ep.input_ids])
    with torch.no_grad():
        plain = model(input_ids=ids, labels=ids).loss.item() * (len(ep.input_ids) - 1)
        got = episode_loss(model, [ep], "sum").item()
    assert got == pytest.approx(plain, rel=1e-4)


def test_nocot_supervises_only_answers(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    model.eval()
    ep = build_episode(tok, SHOTS, objective="nocot", weights=WEIGHTS)
    targets = [s for s in ep.spans if s.kind == "target"]
    assert [s.text for s in targets] == [" " + s.answer for s in SHOTS]
    assert all("answer is" not in s.text for s in ep.spans)
    with torch.no_grad():
        got = episode_loss(model, [ep]).item()
    assert got == pytest.approx(_n_pass_loss(model, tok, SHOTS, WEIGHTS, answers_only=True), rel=1e-4)


def test_weights_align_with_tokens(tiny_model_and_tokenizer):
    _, tok = tiny_model_and_tokenizer
    ep = build_episode(tok, SHOTS, "aicd", WEIGHTS)
    assert len(ep.input_ids) == len(ep.loss_weights)
    for span in ep.spans:
        assert tok.decode(ep.input_ids[span.start : span.end]) == span.text
        assert set(ep.loss_weights[span.start : span.end]) <= {span.weight}
    rationale_weights = [s.weight for s in ep.spans if s.kind == "target"]
    assert rationale_weights == WEIGHTS


def test_truncation_drops_earliest_shots_and_keeps_final_rationale(tiny_model_and_tokenizer):
    _, tok = tiny_model_and_tokenizer
    full = build_episode(tok, SHOTS, "aicd", WEIGHTS)
    cut = build_episode(tok, SHOTS, "aicd", WEIGHTS, max_length=len(full) - 1)
    assert cut.n_dropped == 1 and cut.n_shots == 3 and len(cut) < len(full)
    assert cut.spans[-2].text == " " + SHOTS[-1].rationale
    assert [s.weight for s in cut.spans if s.kind == "target"] == WEIGHTS[1:]
    from aicd.episodes import EpisodeTooLong

    with pytest.raises(EpisodeTooLong):
        build_episode(tok, SHOTS, "aicd", WEIGHTS, max_length=20)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"objective": "bogus"}, "objective"),
        ({"weights": [0.1, 1.0]}, "weights must have n_shots=4"),
        ({"weights": [0.1, -0.1, 0.1, 1.0]}, "weights must be >= 0"),
    ],
)
def test_bad_episode_arguments_name_the_problem(tiny_model_and_tokenizer, kwargs, message):
    _, tok = tiny_model_and_tokenizer
    with pytest.raises(ValueError, match=message):
        build_episode(tok, SHOTS, **kwargs)


def test_schedules():
    assert omega_weights("paper", 4) == [0.1, 0.1, 0.1, 1.0]
    assert omega_weights("paper", 4, omega=0.5) == [0.5, 0.5, 0.5, 1.0]
    assert omega_weights("constant", 3) == [1.0, 1.0, 1.0]
    assert omega_weights("linear", 3, omega=0.0) == [0.0, 0.5, 1.0]
    exp = omega_weights("exponential", 3, omega=0.25)
    assert exp[0] == pytest.approx(0.25) and exp[1] == pytest.approx(0.5) and exp[2] == 1.0
    assert omega_weights("custom", 2, weights=[0.2, 0.8]) == [0.2, 0.8]
    assert omega_weights("paper", 1) == [1.0]
    with pytest.raises(ValueError, match="weights must be given"):
        omega_weights("custom", 2)
    with pytest.raises(ValueError, match="omega must be >= 0"):
        omega_weights("paper", 2, omega=-1)
    assert math.isclose(sum(omega_weights("linear", 5, omega=0.2)), 0.2 + 0.4 + 0.6 + 0.8 + 1.0)
