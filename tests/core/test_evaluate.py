"""Evaluation: batched generation equals one-at-a-time, stop strings, prompts, scoring, saving, the CLI."""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
from typing import Any

import pytest

from aicd.config import EvalConfig, TemplateConfig
from aicd.data.jsonl import write_examples
from aicd.data.record import Example, Rationale
from aicd.evaluate import EvalCallback, EvalResult, GenerationRecord, evaluate, generate
from aicd.prompts import build_prompt, sample_shots

QUESTIONS = [
    ("What is 6 times 7?", "42"),
    ("Tom has 3 apples and eats 1. How many are left?", "2"),
    ("A box holds 12 eggs. How many eggs are in 3 boxes?", "36"),
    ("Sara had 10 dollars and spent 4. How much is left?", "6"),
    ("What is 100 divided by 4?", "25"),
    ("Is 7 larger than 3 plus 5?", "-1"),
]


def _examples(prefix: str = "t") -> list[Example]:
    return [
        Example(
            id=f"{prefix}{i}",
            question=q,
            answer=a,
            rationales=[Rationale(text=f"We compute it. So, the answer is {a}.", source="gold")],
        )
        for i, (q, a) in enumerate(QUESTIONS)
    ]


def _pool(n: int = 12) -> list[Example]:
    return [
        Example(
            id=f"s{i}",
            question=f"What is {i} plus {i}?",
            answer=str(2 * i),
            rationales=[Rationale(text=f"{i} + {i} = {2 * i}. So, the answer is {2 * i}.")],
        )
        for i in range(n)
    ]


def _attended(mask: Any, row: int, width: int) -> Any:
    """The cache columns `row` attends to, in any form the scheduler hands a model: a [rows, T] padding mask,
    the [rows, 1, 1, T] mask its attention gets (bool, or additive float), or None (no row padded)."""
    import torch

    if mask is None:
        return torch.ones(width, dtype=torch.bool)
    if mask.dim() == 4:
        last = mask[row, 0, -1]
        return last if last.dtype == torch.bool else last == 0
    return mask[row].bool()


def _scripted_model(tokenizer: Any, script: dict[str, str]) -> Any:
    """A causal LM that, after the last `Question: q\\nAnswer:`, types script[q] byte by byte, then EOS.

    Its KV cache holds the token ids themselves, so every step it reads the whole (unpadded) context back
    from the cache the scheduler keeps: it checks the real generation path (left padding, rows retiring and
    joining the shared cache, the stop strings, cutting, answer extraction). `calls` counts forward passes.
    """
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.modeling_outputs import CausalLMOutputWithPast

    marker = tokenizer("\nAnswer:", add_special_tokens=False)["input_ids"]

    class ScriptedLM(GPT2LMHeadModel):
        def forward(self, input_ids: Any = None, attention_mask: Any = None, **kwargs: Any) -> Any:
            self.calls += 1
            cache = kwargs.get("cache", kwargs.get("past_key_values"))
            as_kv = input_ids.float()[:, None, :, None]  # [rows, 1 head, T, 1]: the ids are the "keys"
            context = cache.update(as_kv, as_kv, 0)[0][:, 0, :, 0].long()
            logits = torch.zeros(*input_ids.shape, self.config.vocab_size)
            for row in range(input_ids.shape[0]):
                ids = context[row][_attended(attention_mask, row, context.shape[1])].tolist()
                at = max(i for i in range(len(ids)) if ids[i : i + len(marker)] == marker)
                question = tokenizer.decode(ids[:at]).rsplit("Question: ", 1)[-1]
                typed = ids[at + len(marker) :]
                target = tokenizer(script.get(question, ""), add_special_tokens=False)["input_ids"]
                nxt = tokenizer.eos_token_id
                if len(typed) < len(target) and target[: len(typed)] == typed:
                    nxt = target[len(typed)]
                logits[row, -1, nxt] = 10.0
            return CausalLMOutputWithPast(logits=logits, past_key_values=cache)

    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_layer=1,
        n_embd=8,
        n_head=1,
        bos_token_id=1,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = ScriptedLM(config)
    model.calls = 0
    return model


@pytest.fixture(scope="module")
def byte_tokenizer() -> Any:
    from aicd.models import tiny_tokenizer

    return tiny_tokenizer()


# ------------------------------------------------------------------------------------------ generation


@pytest.mark.parametrize("spec", ["tiny:gpt2?initializer_range=0.2", "tiny:llama?initializer_range=0.2"])
def test_batched_generate_equals_one_at_a_time(spec: str) -> None:
    from aicd.models import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(spec, seed=0)
    prompts = [
        "Question: What is 2+2?\nAnswer:",
        "Question: hi\nAnswer:",
        "Question: a much longer question, with many more bytes in it than the others\nAnswer:",
        "x",
        "Question: Tom has 3 apples.\nAnswer:",
    ]
    batched = generate(model, tok, prompts, batch_size=3, max_new_tokens=12)
    single = [generate(model, tok, [p], batch_size=1, max_new_tokens=12)[0] for p in prompts]
    assert batched == single
    assert len(set(batched)) == len(prompts)  # the outputs depend on the prompt, so the check has teeth


def test_generate_stops_at_question_and_eos(byte_tokenizer: Any) -> None:
    junk = "z" * 200
    model = _scripted_model(
        byte_tokenizer,
        {
            "a?": " So, the answer is 4.\n\nQuestion: " + junk,
            "a much longer question?": " The answer is yes.",  # ends with EOS
        },
    )
    prompts = [
        "Question: a?\nAnswer:",
        "Question: a much longer question?\nAnswer:",
        "Question: unknown?\nAnswer:",
    ]
    out = generate(model, byte_tokenizer, prompts, batch_size=8, max_new_tokens=300)
    assert out == ["So, the answer is 4.", "The answer is yes.", ""]
    # generation stopped right after "Question:" instead of typing the 200 junk bytes
    assert model.calls <= len(" So, the answer is 4.\n\nQuestion:") + 1


def test_generate_custom_and_non_ascii_stop_strings(byte_tokenizer: Any) -> None:
    model = _scripted_model(byte_tokenizer, {"a?": " 5 apples ENDé then more text", "b?": " x Q: y"})
    prompts = ["Question: a?\nAnswer:", "Question: b?\nAnswer:"]
    assert generate(model, byte_tokenizer, prompts, max_new_tokens=40, stop=("ENDé", "Q:")) == [
        "5 apples",
        "x",
    ]
    assert generate(model, byte_tokenizer, prompts, max_new_tokens=40, stop=()) == [
        "5 apples ENDé then more text",
        "x Q: y",
    ]


def test_generate_keeps_input_order_across_batches(byte_tokenizer: Any) -> None:
    script = {f"q{i}{'?' * i}": f" answer {i}" for i in range(7)}
    model = _scripted_model(byte_tokenizer, script)
    prompts = [f"Question: {q}\nAnswer:" for q in script]
    assert generate(model, byte_tokenizer, prompts, batch_size=2, max_new_tokens=20) == [
        f"answer {i}" for i in range(7)
    ]


# ------------------------------------------------------------------------------------------ prompts


def test_sample_shots_seeded_nested_and_never_the_item() -> None:
    pool = _pool(12)
    item = pool[3]
    a = sample_shots(pool, 4, seed=0, item=item)
    assert len(a) == 4 and item.id not in [s.id for s in a] and len({s.id for s in a}) == 4
    assert sample_shots(pool, 4, seed=0, item=item) == a
    assert sample_shots(pool, 2, seed=0, item=item) == a[:2]
    assert [s.id for s in sample_shots(pool, 4, seed=1, item=item)] != [s.id for s in a]
    assert len(sample_shots(pool, 50, seed=0, item=item)) == 11  # the pool minus the item


def test_build_prompt_renders_like_training_and_drops_earliest_shots(byte_tokenizer: Any) -> None:
    shots = _pool(3)
    template = TemplateConfig()
    full = build_prompt("What is 9 minus 2?", shots, template, tokenizer=byte_tokenizer)
    expected = (
        "".join(
            f"{'' if i == 0 else chr(10) * 2}Question: {s.question}\nAnswer: {s.rationales[0].text}"
            for i, s in enumerate(shots)
        )
        + "\n\nQuestion: What is 9 minus 2?\nAnswer:"
    )
    assert full.text == expected
    assert full.input_ids == byte_tokenizer(expected, add_special_tokens=False)["input_ids"]
    budget = len(full.input_ids) - 1 + 10
    cut = build_prompt(
        "What is 9 minus 2?", shots, template, tokenizer=byte_tokenizer, max_length=budget, max_new_tokens=10
    )
    assert cut.shot_ids == [s.id for s in shots[1:]]
    assert len(cut.input_ids) + 10 <= budget
    assert cut.text.startswith("Question: What is 1 plus 1?")


def test_answer_demonstrations_render_exactly_like_a_nocot_training_episode(byte_tokenizer: Any) -> None:
    from aicd.episodes import Shot, build_episode

    shots, question = _pool(3), "What is 9 minus 2?"
    prompt = build_prompt(
        question, shots, TemplateConfig(), tokenizer=byte_tokenizer, demonstrations="answer"
    )
    assert "So, the answer is" not in prompt.text and "+" not in prompt.text
    episode = build_episode(
        byte_tokenizer,
        [*(Shot(question=s.question, answer=s.answer) for s in shots), Shot(question=question, answer="7")],
        objective="nocot",
    )
    # the prompt is the nocot episode up to the final `Answer:` — same text, same token boundaries
    prompt_spans = [sp for sp in episode.spans if not (sp.shot == len(shots) and sp.kind != "prompt")]
    assert prompt.text == "".join(sp.text for sp in prompt_spans if sp.kind != "bos")
    assert prompt.input_ids == episode.input_ids[: len(prompt.input_ids)]
    assert len(prompt.input_ids) == prompt_spans[-1].end
    # the default still demonstrates with rationales, as the CoT objectives were trained
    default = build_prompt(question, shots, TemplateConfig())
    assert f"Answer: {shots[0].rationales[0].text}" in default.text


def test_evaluate_with_answer_demonstrations_keeps_answer_only_shots(tmp_path: Any) -> None:
    pool = _pool() + [Example(id="bare", question="What is 50 plus 50?", answer="100")]  # no rationale
    seen: list[str] = []

    def generate_fn(prompts: list[str]) -> list[str]:
        seen.extend(prompts)
        return [" 7"] * len(prompts)

    config = EvalConfig(model="none", shots=[3], seeds=[0, 1, 2], demonstrations="answer")
    evaluate(config, examples=_examples(), shot_examples=pool, generate_fn=generate_fn, progress=False)
    assert seen and not any("So, the answer is" in p for p in seen)
    assert any("Question: What is 50 plus 50?\nAnswer: 100\n\n" in p for p in seen)  # rationale-less too
    assert all(re.search(r"Question: What is (\d+) plus \1\?\nAnswer: \d+\n\n", p) for p in seen)


# ------------------------------------------------------------------------------------------ evaluate


def test_evaluate_scores_a_model_that_always_answers_right(byte_tokenizer: Any, tmp_path: Any) -> None:
    items = _examples()
    script = {q: f" Let me think. So, the answer is {a}.\n\nQuestion: more" for q, a in QUESTIONS}
    script[QUESTIONS[1][0]] = " 3 - 1 = 2 apples."  # no announcement: the last number is read
    model = _scripted_model(byte_tokenizer, script)
    config = EvalConfig(
        model="scripted",
        shots=[0, 2],
        seeds=[0, 1],
        max_new_tokens=64,
        batch_size=4,
        output_dir=str(tmp_path),
    )
    result = evaluate(
        config, model=model, tokenizer=byte_tokenizer, examples=items, shot_examples=_pool(), progress=False
    )
    assert [r["accuracy"] for r in result.rows] == [1.0] * 4
    assert all(r.correct and r.extracted == r.gold for r in result.items)

    script[QUESTIONS[0][0]] = " So, the answer is 41."  # one wrong item, one unanswered item
    script[QUESTIONS[2][0]] = " I do not know."
    result = evaluate(
        config.model_copy(update={"shots": [3], "seeds": [5], "output_dir": None}),
        model=model,
        tokenizer=byte_tokenizer,
        examples=items,
        shot_examples=_pool(),
        progress=False,
    )
    assert result.rows == [{"shots": 3, "seed": 5, "accuracy": pytest.approx(4 / 6), "n": 6, "n_invalid": 1}]


class _Recorder(EvalCallback):
    def __init__(self, stop_after: int | None = None) -> None:
        self.batches: list[list[GenerationRecord]] = []
        self.progress: list[tuple[int, int]] = []
        self.stop_after = stop_after

    def on_items(self, records: list[GenerationRecord]) -> None:
        self.batches.append(records)

    def on_progress(self, done: int, total: int) -> None:
        self.progress.append((done, total))

    def should_stop(self) -> bool:
        return self.stop_after is not None and len(self.batches) >= self.stop_after


def test_evaluate_end_to_end_with_a_tiny_model(tiny_model_and_tokenizer: Any, tmp_path: Any) -> None:
    model, tok = tiny_model_and_tokenizer
    items = _examples()
    config = EvalConfig(
        model="tiny:gpt2",
        shots=[0, 2],
        seeds=[0, 1, 2],
        max_new_tokens=6,
        batch_size=4,
        output_dir=str(tmp_path / "out"),
    )
    recorder = _Recorder()
    result = evaluate(
        config,
        model=model,
        tokenizer=tok,
        examples=items,
        shot_examples=_pool(),
        callback=recorder,
        progress=False,
    )

    assert not result.stopped
    assert [(r["shots"], r["seed"]) for r in result.rows] == [(k, s) for k in (0, 2) for s in (0, 1, 2)]
    assert all(0.0 <= r["accuracy"] <= 1.0 and r["n"] == len(items) for r in result.rows)
    assert len(result.items) == 2 * 3 * len(items)
    for rec in result.items:
        assert len(rec.shot_ids) == rec.shots and not set(rec.shot_ids) & {e.id for e in items}
        assert rec.prompt.endswith(f"Question: {rec.question}\nAnswer:")
        assert rec.gold == {e.id: e.answer for e in items}[rec.example_id]
        assert rec.correct == (rec.extracted == rec.gold)
    # seeds change the demonstrations; 0-shot prompts are the same under every seed (and generated once)
    two_shot = {s: [r.shot_ids for r in result.items if r.shots == 2 and r.seed == s] for s in (0, 1, 2)}
    assert two_shot[0] != two_shot[1] != two_shot[2]
    zero = {s: [r.generation for r in result.items if r.shots == 0 and r.seed == s] for s in (0, 1, 2)}
    assert zero[0] == zero[1] == zero[2]
    # summary = mean and sample std of the rows
    for summary in result.summary:
        accs = [r["accuracy"] for r in result.rows if r["shots"] == summary["shots"]]
        assert summary["mean"] == pytest.approx(statistics.fmean(accs))
        assert summary["std"] == pytest.approx(statistics.stdev(accs))
        assert summary["n_seeds"] == 3
    # the callback saw every record once and the progress reached the total
    assert sorted(id(r) for b in recorder.batches for r in b) == sorted(id(r) for r in result.items)
    assert recorder.progress[-1] == (len(result.items), len(result.items))
    # saved files round-trip
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["rows"] == result.rows and saved["answer_kind"] == "number"
    lines = (tmp_path / "out" / "generations.jsonl").read_text().splitlines()
    assert len(lines) == len(result.items)
    assert set(json.loads(lines[0])) == {
        "example_id",
        "question",
        "gold",
        "shots",
        "seed",
        "shot_ids",
        "prompt",
        "generation",
        "extracted",
        "correct",
    }
    assert EvalResult.load(tmp_path / "out").items == result.items


def test_evaluate_generate_fn_seam_and_stop(tmp_path: Any) -> None:
    items = _examples()
    answers = dict(QUESTIONS)

    def canned(prompts: list[str]) -> list[str]:  # right for questions containing "is", wrong otherwise
        out = []
        for p in prompts:
            q = p.rsplit("Question: ", 1)[1].removesuffix("\nAnswer:")
            out.append(f"So, the answer is {answers[q] if ' is ' in q else 999}.")
        return out

    config = EvalConfig(model="none", shots=[0], seeds=[0], batch_size=2)
    result = evaluate(config, examples=items, generate_fn=canned, progress=False)
    expected = sum(" is " in q for q, _ in QUESTIONS) / len(QUESTIONS)
    assert 0 < expected < 1
    assert result.rows[0]["accuracy"] == pytest.approx(expected)

    recorder = _Recorder(stop_after=1)
    stopped = evaluate(
        config.model_copy(update={"seeds": [0, 1]}),
        examples=items,
        generate_fn=canned,
        callback=recorder,
        progress=False,
    )
    assert stopped.stopped and len(stopped.items) == 2 and stopped.rows == []


def test_evaluate_resumed_from_stored_chains_generates_only_what_is_missing() -> None:
    items = _examples()
    asked: list[str] = []

    def numbered(prompts: list[str]) -> list[str]:  # a distinct chain per prompt, and a log of what was asked
        asked.extend(prompts)
        return [f"chain {len(p)}. So, the answer is {len(p) % 7}." for p in prompts]

    config = EvalConfig(model="none", shots=[0, 2], seeds=[0, 1], batch_size=2)
    full = evaluate(config, examples=items, shot_examples=_pool(), generate_fn=numbered, progress=False)
    n_full = len(asked)
    assert full.meta["reused"] == 0 and n_full < len(full.items)  # 0-shot prompts repeat across seeds

    asked.clear()
    partial = evaluate(
        config,
        examples=items,
        shot_examples=_pool(),
        generate_fn=numbered,
        callback=_Recorder(stop_after=3),
        progress=False,
    )
    assert partial.stopped and 0 < len(partial.items) < len(full.items)
    stored = {(r.example_id, r.shots, r.seed): r.generation for r in partial.items}

    asked.clear()
    resumed = evaluate(
        config, examples=items, shot_examples=_pool(), generate_fn=numbered, reuse=stored, progress=False
    )
    assert resumed.meta["reused"] == len(stored)
    assert not set(asked) & {r.prompt for r in partial.items}  # nothing stored was generated again
    assert 0 < len(asked) < n_full
    assert resumed.rows == full.rows and resumed.items == full.items  # same result as never interrupted


def test_evaluate_prefers_demonstrations_with_rationales_and_checks_inputs() -> None:
    bare = [Example(id=f"b{i}", question=f"What is {i} minus 1?", answer=str(i - 1)) for i in range(20)]
    config = EvalConfig(model="none", shots=[3], seeds=[0, 1])
    result = evaluate(
        config,
        examples=_examples(),
        shot_examples=bare + _pool(4),
        progress=False,
        generate_fn=lambda ps: ["So, the answer is 1."] * len(ps),
    )
    assert all(set(r.shot_ids) <= {f"s{i}" for i in range(4)} and len(r.shot_ids) == 3 for r in result.items)
    assert all(r.prompt.count("So, the answer is") == 3 for r in result.items)  # rationales, not bare answers

    with pytest.raises(ValueError, match="2 chains for 6 prompts"):
        evaluate(
            config.model_copy(update={"batch_size": 8}),
            examples=_examples(),
            shot_examples=_pool(),
            progress=False,
            generate_fn=lambda ps: ["1", "2"],
        )
    from aicd.errors import DataError

    with pytest.raises(DataError, match="no demonstrations"):
        evaluate(config, examples=_examples(), shot_examples=[], progress=False, generate_fn=lambda ps: ps)


def test_evaluate_yesno_auto_kind() -> None:
    items = [
        Example(id="y1", question="Is water wet?", answer="yes"),
        Example(id="y2", question="Can fish fly?", answer="no"),
    ]
    config = EvalConfig(model="none", dataset="my-file.jsonl", shots=[0])
    result = evaluate(
        config,
        examples=items,
        generate_fn=lambda ps: ["No doubt. So, the answer is yes."] * len(ps),
        progress=False,
    )
    assert result.meta["answer_kind"] == "yesno"
    assert [r.extracted for r in result.items] == ["yes", "yes"] and result.rows[0]["accuracy"] == 0.5


# ------------------------------------------------------------------------------------------ CLI


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aicd", "eval", *args], capture_output=True, text=True, timeout=300
    )


def test_cli_bad_shots_is_a_clean_error() -> None:
    proc = _cli("--model", "tiny:gpt2", "--shots", "0,two")
    assert proc.returncode == 2
    assert "shots" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_cli_runs_and_writes_results(tmp_path: Any) -> None:
    data = tmp_path / "test.jsonl"
    write_examples(data, _examples()[:3])
    out = tmp_path / "eval"
    proc = _cli(
        "--model",
        "tiny:gpt2",
        "--dataset",
        str(data),
        "--shots-dataset",
        str(data),
        "--shots",
        "0,1",
        "--seeds",
        "0,1",
        "--max-new-tokens",
        "4",
        "--batch-size",
        "8",
        "--out",
        str(out),
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr
    assert "± " in proc.stdout
    results = json.loads((out / "results.json").read_text())
    assert [(s["shots"], s["n_seeds"]) for s in results["summary"]] == [(0, 2), (1, 2)]
    assert len((out / "generations.jsonl").read_text().splitlines()) == 2 * 2 * 3


def test_cli_resume_scores_saved_chains_and_refuses_a_different_config(tmp_path: Any) -> None:
    data = tmp_path / "test.jsonl"
    write_examples(data, _examples()[:3])
    out = tmp_path / "eval"
    common = ["--model", "tiny:gpt2", "--dataset", str(data), "--shots-dataset", str(data), "--out", str(out)]
    first = _cli(*common, "--shots", "0,1", "--seeds", "0", "--max-new-tokens", "4", "--no-progress")
    assert first.returncode == 0, first.stderr
    saved = {
        (g["example_id"], g["shots"]): g["generation"]
        for g in map(json.loads, open(out / "generations.jsonl"))
    }

    more = _cli(
        *common, "--shots", "0,1", "--seeds", "0,1", "--max-new-tokens", "4", "--no-progress", "--resume"
    )
    assert more.returncode == 0, more.stderr
    assert "resuming: 6 saved generations" in more.stdout
    results = json.loads((out / "results.json").read_text())
    assert results["reused"] == 6 and [s["n_seeds"] for s in results["summary"]] == [2, 2]
    items = [json.loads(line) for line in open(out / "generations.jsonl")]
    assert len(items) == 2 * 2 * 3
    assert all(g["generation"] == saved[(g["example_id"], g["shots"])] for g in items if g["seed"] == 0)

    before = (out / "results.json").read_text()
    other = _cli(
        *common, "--shots", "0,1", "--seeds", "0", "--max-new-tokens", "5", "--no-progress", "--resume"
    )
    assert other.returncode == 2 and "max_new_tokens" in other.stderr and "Traceback" not in other.stderr
    assert (out / "results.json").read_text() == before  # refused before anything was touched
    empty = _cli(*common[:-1], str(tmp_path / "nothing"), "--resume", "--no-progress")
    assert empty.returncode == 2 and "nothing to resume" in empty.stderr


def test_cli_ctrl_c_saves_partial_results(tmp_path: Any) -> None:
    import signal
    import time

    data = tmp_path / "test.jsonl"
    write_examples(data, _examples())
    out = tmp_path / "eval"
    cmd = [
        sys.executable,
        "-m",
        "aicd",
        "eval",
        "--model",
        "tiny:gpt2",
        "--dataset",
        str(data),
        "--shots",
        "0",
        "--seeds",
        "0",
        "--batch-size",
        "1",
        "--max-new-tokens",
        "400",  # slow enough per item that the run cannot finish before the signal lands
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        buffer = ""
        # the tqdm bar shows the first finished item(s); it may skip numbers between refreshes
        while not re.search(r"\b[1-5]/6\b", buffer) and proc.poll() is None:
            buffer += proc.stderr.read(1)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            time.sleep(0.1)
    assert proc.returncode == 130, buffer + err
    results = json.loads((out / "results.json").read_text())
    assert results["stopped"] is True and results["rows"] == []
    assert 1 <= len((out / "generations.jsonl").read_text().splitlines()) < 6


def test_cli_demonstrates_answers_only_to_a_nocot_checkpoint(tmp_path: Any, aicd_cli: Any) -> None:
    from aicd.config import TrainConfig, save_config
    from aicd.models import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer("tiny:gpt2?n_layer=1&n_embd=32&n_head=2")
    ckpt = tmp_path / "run" / "final"
    model.save_pretrained(ckpt)
    tok.save_pretrained(ckpt)
    save_config(TrainConfig(objective="nocot"), ckpt / "config.yaml")  # what train() writes
    data = tmp_path / "test.jsonl"
    write_examples(data, _examples()[:2])
    common = ["--model", str(ckpt), "--dataset", str(data), "--shots", "1", "--max-new-tokens", "2"]

    def prompts(out: Any) -> list[str]:
        return [json.loads(line)["prompt"] for line in open(out / "generations.jsonl")]

    assert aicd_cli("eval", *common, "--out", str(tmp_path / "auto"), "--no-progress") == 0
    auto = json.loads((tmp_path / "auto" / "results.json").read_text())
    assert auto["config"]["demonstrations"] == "answer"
    assert all(
        "So, the answer is" not in p and re.search(r"Answer: -?\d+\n\n", p)
        for p in prompts(tmp_path / "auto")
    )

    out = tmp_path / "forced"
    assert aicd_cli("eval", *common, "--demonstrations", "rationale", "--out", str(out), "--no-progress") == 0
    assert all("So, the answer is" in p for p in prompts(out))
    assert aicd_cli("eval", *common, "--demonstrations", "nope", "--out", str(out)) == 2

    # results saved before the field existed resume as if it had its default
    results = json.loads((out / "results.json").read_text())
    del results["config"]["demonstrations"]
    (out / "results.json").write_text(json.dumps(results))
    assert aicd_cli("eval", *common, "--demonstrations", "rationale", "--out", str(out), "--resume") == 0


def test_service_evaluates_a_nocot_run_with_answer_demonstrations() -> None:
    from types import SimpleNamespace

    from backend.services.configs import eval_config

    runs = {
        1: SimpleNamespace(config={"objective": "nocot"}, step=5, status="succeeded"),
        2: SimpleNamespace(config={"objective": "aicd"}, step=5, status="succeeded"),
    }
    session = SimpleNamespace(get=lambda model, key: runs.get(key))  # eval_config only looks runs up

    def config(run_id: int, **extra: Any) -> EvalConfig:
        return eval_config(session, run_id, None, None, {"dataset": "svamp", **extra}, "evaluations/x")

    assert config(1).demonstrations == "answer"
    assert config(2).demonstrations == "rationale"
    assert config(1, demonstrations="rationale").demonstrations == "rationale"  # an explicit choice stays
