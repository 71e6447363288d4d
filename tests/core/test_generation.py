"""Generation backends: the hf slot scheduler against transformers' own generate, rows retiring, OOM;
the openai backend against a real local server (identical chains, faults, concurrency); bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aicd.config import EvalConfig
from aicd.data.record import Example, Rationale
from aicd.errors import AICDError, ConfigError
from aicd.evaluate import evaluate
from aicd.generation.hf import generate
from tests.core.test_evaluate import _scripted_model
from tests.support.completions_server import CANNED_NAME, CompletionsServer, canned_chain

TINY = "tiny:gpt2?initializer_range=0.2"


def _examples(n: int = 6) -> list[Example]:
    return [
        Example(
            id=f"q{i}",
            question=f"What is {i} plus {i * 3}?" + " Think." * (i % 3),
            answer=str(4 * i),
            rationales=[Rationale(text=f"{i} + {3 * i} = {4 * i}. So, the answer is {4 * i}.")],
        )
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def tiny() -> tuple[Any, Any]:
    from aicd.models import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(TINY, seed=0)
    return model.eval(), tok


# ------------------------------------------------------------------------------------------ hf backend


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("spec", [TINY, "tiny:llama?initializer_range=0.2"])
def test_slot_scheduler_equals_transformers_generate_one_prompt_at_a_time(spec: str, attention: str) -> None:
    """The second computation is transformers' own `generate` on each prompt alone (no padding, no slots)."""
    import torch

    from aicd.models import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(spec, seed=0)
    model.set_attn_implementation(attention)
    model.eval()
    prompts = [f"Question: {'abc ' * n}{n}?\nAnswer:" for n in (1, 9, 3, 14, 2, 6, 11)]
    expected = []
    for p in prompts:
        ids = torch.tensor([tok(p, add_special_tokens=False)["input_ids"]])
        out = model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=10, do_sample=False
        )
        expected.append(tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip())
    assert generate(model, tok, prompts, batch_size=3, max_new_tokens=10, stop=()) == expected
    assert len(set(expected)) == len(prompts)  # outputs depend on the prompt: the comparison has teeth


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_lean_gpt2_decode_step_gives_the_models_own_logits_and_cache_bit_for_bit(attention: str) -> None:
    """One decode step of a left-padded batch: aicd.generation.lean against `model(...)` on a copy of the cache."""
    import copy

    import torch

    from aicd.generation.kv_cache import SpareRoomCache
    from aicd.generation.lean import lean_decoder
    from aicd.models import load_model_and_tokenizer

    model, _ = load_model_and_tokenizer(TINY, seed=0)
    model.set_attn_implementation(attention)
    model.eval()
    lengths = [7, 3, 5]
    mask = torch.tensor([[0] * (7 - n) + [1] * n for n in lengths])
    ids = torch.randint(3, 300, mask.shape, generator=torch.Generator().manual_seed(0)) * mask
    with torch.inference_mode():
        cache = model(
            input_ids=ids, attention_mask=mask, cache=SpareRoomCache(), use_cache=True
        ).past_key_values
        step_mask = torch.cat([mask, torch.ones(3, 1, dtype=mask.dtype)], dim=1)
        if attention == "sdpa":
            step4d = step_mask.bool()[:, None, None, :]
        else:
            step4d = torch.zeros(3, 1, 1, 8).masked_fill(
                step_mask[:, None, None, :] == 0, torch.finfo(torch.float32).min
            )
        new, positions = torch.tensor([[11], [12], [13]]), torch.tensor([[n] for n in lengths])
        theirs_cache = copy.deepcopy(cache)
        theirs = model(
            input_ids=new,
            attention_mask=step_mask,
            position_ids=positions,
            cache=theirs_cache,
            use_cache=True,
        ).logits
        lean = lean_decoder(model)
        assert lean is not None
        ours = lean(new, positions, step4d, cache)
    assert torch.equal(ours, theirs)
    for a, b in zip(cache.layers, theirs_cache.layers, strict=True):
        assert torch.equal(a.keys, b.keys) and torch.equal(a.values, b.values)


def test_lean_decode_is_only_taken_for_the_stock_forward(tiny: tuple[Any, Any]) -> None:
    """A subclass's forward, a forward patched on the instance, or a hook keeps the model's own forward."""
    from aicd.generation.lean import lean_decoder
    from aicd.models import load_model_and_tokenizer

    model, _ = tiny
    assert lean_decoder(model) is not None

    class Scripted(type(model)):
        def forward(self, *args: Any, **kwargs: Any) -> Any:
            return super().forward(*args, **kwargs)

    assert lean_decoder(Scripted(model.config)) is None
    patched, _ = load_model_and_tokenizer(TINY, seed=0)
    patched.forward = patched.forward
    assert lean_decoder(patched) is None
    hooked, _ = load_model_and_tokenizer(TINY, seed=0)
    hooked.transformer.h[1].mlp.register_forward_hook(lambda *args: None)
    assert lean_decoder(hooked) is None
    llama, _ = load_model_and_tokenizer("tiny:llama", seed=0)
    assert lean_decoder(llama) is None


def test_the_stop_check_skips_only_rows_that_cannot_have_completed_a_stop_string() -> None:
    """`_stop_enders`: every tail StopStringCriteria matches ends in one of its tokens, and it is a small set."""
    import random

    import torch
    from transformers import StopStringCriteria

    from aicd.generation.hf import _stop_enders
    from aicd.models import tiny_tokenizer

    tok = tiny_tokenizer()
    stops = ["Question:", "\n\n"]
    criteria = StopStringCriteria(tok, stops)
    enders = _stop_enders(criteria)
    ids = {c: tok(c, add_special_tokens=False)["input_ids"][0] for c in "Question:\n x"}
    assert enders == {ids[":"], ids["\n"]}
    rng = random.Random(0)
    tails = [[rng.choice(list(ids.values())) for _ in range(12)] for _ in range(3000)]
    tails += [
        tok(t, add_special_tokens=False)["input_ids"] for t in ("x Question:", "abcdefgh\n\n", "Question: x")
    ]
    tails = [[ids[" "]] * (12 - len(t)) + t for t in tails]
    matched = criteria(torch.tensor(tails), None).tolist()
    assert sum(matched) >= 3  # the random tails hit the stop strings too: the check has teeth
    assert all(tail[-1] in enders for tail, hit in zip(tails, matched, strict=True) if hit)


def test_rows_retire_as_they_stop_and_free_their_slot() -> None:
    """A decode step computes only live rows: finished rows leave, waiting prompts take their slot."""
    from aicd.models import tiny_tokenizer

    tok = tiny_tokenizer()
    script = {f"q{i}?": " long answer that keeps going for a while" if i == 0 else f" a{i}" for i in range(6)}
    model = _scripted_model(tok, script)
    rows_per_call: list[tuple[int, int]] = []  # (rows, new tokens) of every forward pass
    forward = model.forward

    def counting(input_ids: Any = None, **kw: Any) -> Any:
        rows_per_call.append(tuple(input_ids.shape))
        return forward(input_ids=input_ids, **kw)

    model.forward = counting
    prompts = [f"Question: {q}\nAnswer:" for q in script]
    out = generate(model, tok, prompts, batch_size=2, max_new_tokens=60)
    assert out == [s.strip() for s in script.values()]
    decode_rows = sum(rows for rows, width in rows_per_call if width == 1)
    typed = [len(tok(s, add_special_tokens=False)["input_ids"]) for s in script.values()]
    assert decode_rows == sum(typed)  # each row decodes exactly its own tokens (then EOS), never idles
    assert max(rows for rows, _ in rows_per_call) <= 2
    # the long row was still running while short ones were prefilled into the freed slot
    prefills = [i for i, (_, width) in enumerate(rows_per_call) if width > 1]
    assert len(prefills) >= 5 and prefills[-1] < len(rows_per_call) - typed[0] // 2


def test_a_batch_that_does_not_fit_in_memory_is_a_readable_error(tiny: tuple[Any, Any]) -> None:
    import torch

    model, tok = tiny

    class TooBig(type(model)):
        def forward(self, input_ids: Any = None, **kw: Any) -> Any:
            if input_ids.shape[0] > 2:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
            return super().forward(input_ids=input_ids, **kw)

    big = TooBig(model.config).eval()
    with pytest.raises(AICDError, match=r"batch_size: 8 .*do not fit in memory.*try --batch-size 4"):
        generate(big, tok, ["Question: a?\nAnswer:"] * 8, batch_size=8, max_new_tokens=4)
    assert len(generate(big, tok, ["Question: a?\nAnswer:"] * 8, batch_size=2, max_new_tokens=4)) == 8


# ------------------------------------------------------------------------------------------ openai backend


def test_openai_backend_gives_the_hf_backends_chains_item_for_item(
    tiny: tuple[Any, Any], tmp_path: Path
) -> None:
    model, tok = tiny
    items, pool = _examples(), _examples(12)
    for ex in pool:
        ex.id = "pool-" + ex.id
    config = EvalConfig(model=TINY, shots=[0, 1], seeds=[0, 1], max_new_tokens=12, batch_size=4)
    local = evaluate(config, model=model, tokenizer=tok, examples=items, shot_examples=pool, progress=False)

    server = CompletionsServer(model=model, tokenizer=tok, served_name="student").start()
    try:
        remote_cfg = config.model_copy(
            update={
                "backend": "openai",
                "base_url": server.base_url,
                "served_model": "student",
                "concurrency": 4,
            }
        )
        remote = evaluate(remote_cfg, examples=items, shot_examples=pool, progress=False)
    finally:
        server.close()
    assert server.counts["ok"] > 0
    assert [r.to_dict() for r in remote.items] == [r.to_dict() for r in local.items]
    assert remote.rows == local.rows
    assert len({r.generation for r in local.items}) > 3  # distinct chains: the comparison has teeth


def _canned_config(server: CompletionsServer, **update: Any) -> EvalConfig:
    return EvalConfig(
        model="tiny:gpt2",  # the prompts' tokenizer; the server answers from the ids it receives
        backend="openai",
        base_url=server.base_url,
        served_model=CANNED_NAME,
        shots=[0, 1, 2],
        seeds=[0, 1],
        max_new_tokens=16,
        **update,
    )


def test_openai_backend_loses_no_item_when_one_request_in_ten_fails(tmp_path: Path) -> None:
    items, pool = _examples(8), _examples(12)
    for ex in pool:
        ex.id = "pool-" + ex.id
    flaky = CompletionsServer(fault_every=10, hang_s=3.0).start()
    try:
        cfg = _canned_config(flaky, request_timeout=1.0, concurrency=8, output_dir=str(tmp_path / "out"))
        result = evaluate(cfg, examples=items, shot_examples=pool, progress=False)
    finally:
        flaky.close()
    assert {"429", "500", "hang"} <= set(flaky.counts) and flaky.counts["ok"] >= 10 * 2
    assert not result.stopped and len(result.items) == 3 * 2 * len(items)
    for rec in result.items:  # every item got the server's one true answer for its prompt
        assert rec.generation == canned_chain(_ids(rec.prompt)).strip()


def _ids(prompt_text: str) -> list[int]:
    from aicd.models import tiny_tokenizer

    return list(tiny_tokenizer()(prompt_text, add_special_tokens=False)["input_ids"])


def test_openai_backend_keeps_its_concurrency_in_flight() -> None:
    from aicd.generation.openai_compat import OpenAIBackend

    server = CompletionsServer(latency=0.1).start()
    try:
        backend = OpenAIBackend(base_url=server.base_url, model=CANNED_NAME, max_new_tokens=8, concurrency=32)
        prompts = [[3 + i, 4, 5] for i in range(96)]
        chains = dict(backend.stream(prompts, ["Question:"]))
        backend.close()
    finally:
        server.close()
    assert chains == {i: canned_chain(p).strip() for i, p in enumerate(prompts)}
    assert server.max_in_flight >= 24 and backend.max_in_flight <= 32


# ------------------------------------------------------------------------------------------ bad input


def test_unreachable_base_url_is_one_clear_error_and_writes_nothing(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = EvalConfig(
        model="tiny:gpt2",
        backend="openai",
        base_url=f"http://127.0.0.1:{port}/v1",
        output_dir=str(tmp_path / "out"),
    )
    with pytest.raises(ConfigError, match=r"^base_url: cannot reach .*127\.0\.0\.1"):
        evaluate(cfg, examples=_examples(), progress=False)
    assert not (tmp_path / "out").exists()


def test_vllm_backend_without_vllm_names_the_extra_and_writes_nothing(tmp_path: Path) -> None:
    try:
        import vllm  # noqa: F401

        pytest.skip("vllm is installed here")
    except ImportError:
        pass
    cfg = EvalConfig(model="runs/x/final", backend="vllm", output_dir=str(tmp_path / "out"))
    with pytest.raises(ConfigError, match=r"^backend: vllm is not installed.*aicd-workbench\[vllm\]"):
        evaluate(cfg, examples=_examples(), tokenizer=object(), progress=False)
    assert not (tmp_path / "out").exists()


def test_openai_backend_without_base_url_is_rejected_naming_the_field() -> None:
    from aicd.config import build_config

    with pytest.raises(ConfigError, match="base_url is required"):
        build_config(EvalConfig, {"model": "m", "backend": "openai"}, None, source="eval")


def test_cli_eval_against_an_unreachable_server_is_one_line_and_writes_nothing(
    tmp_path: Path, aicd_cli: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = aicd_cli(
        "eval", "--model", "tiny:gpt2", "--dataset", "svamp", "--limit", "2", "--backend", "openai",
        "--base-url", "http://127.0.0.1:9/v1", "--out", str(out), "--no-progress",
    )  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "base_url: cannot reach" in err[0], err
    assert not out.exists()


def test_cli_eval_with_the_openai_backend_saves_what_the_server_said(tmp_path: Path, aicd_cli: Any) -> None:
    import json

    server = CompletionsServer().start()
    try:
        code = aicd_cli(
            "eval", "--model", "tiny:gpt2", "--dataset", "svamp", "--limit", "3", "--backend", "openai",
            "--base-url", server.base_url, "--served-model", CANNED_NAME, "--concurrency", "2",
            "--out", str(tmp_path / "out"), "--no-progress",
        )  # fmt: skip
    finally:
        server.close()
    assert code == 0 and server.counts["ok"] == 3
    saved = [json.loads(line) for line in (tmp_path / "out" / "generations.jsonl").read_text().splitlines()]
    assert [r["generation"] for r in saved] == [canned_chain(_ids(r["prompt"])).strip() for r in saved]
    config = json.loads((tmp_path / "out" / "results.json").read_text())["config"]
    assert config["backend"] == "openai" and config["concurrency"] == 2


def test_spare_room_cache_appends_in_place_and_holds_what_a_dynamic_cache_holds() -> None:
    import torch
    from transformers import DynamicCache

    from aicd.generation.kv_cache import SpareRoomCache

    ours, ref = SpareRoomCache(), DynamicCache()
    steps = [torch.randn(3, 2, 5, 4)] + [torch.randn(3, 2, 1, 4) for _ in range(100)]
    buffers = set()
    for kv in steps:
        k, v = ours.update(kv, -kv, 0)
        rk, rv = ref.update(kv, -kv, 0)
        assert torch.equal(k, rk) and torch.equal(v, rv)
        buffers.add(ours.layers[0]._k.data_ptr())
    assert len(buffers) <= 3  # 105 columns written into at most 3 allocations (DynamicLayer: one per step)
    keep = torch.tensor([2, 0])
    ours.batch_select_indices(keep)
    ref.batch_select_indices(keep)
    k, _ = ours.update(steps[1][:2], steps[1][:2], 0)
    assert torch.equal(k, ref.update(steps[1][:2], steps[1][:2], 0)[0])


def test_vllm_backend_sends_token_ids_greedy_with_the_stop_strings(monkeypatch: pytest.MonkeyPatch) -> None:
    """vLLM is not installed here: a stand-in module records what the adapter asks of `vllm.LLM`."""
    import sys
    import types

    calls: dict[str, Any] = {}

    class SamplingParams:
        def __init__(self, **kw: Any) -> None:
            self.kw = kw

    class LLM:
        def __init__(self, **kw: Any) -> None:
            calls["engine"] = kw

        def generate(self, inputs: list, params: SamplingParams, use_tqdm: bool = True) -> list:
            calls["inputs"], calls["params"] = inputs, params.kw
            text = " So, the answer is 4.\n\nQuestion: more"  # a server that leaves the stop string in
            return [types.SimpleNamespace(outputs=[types.SimpleNamespace(text=text)]) for _ in inputs]

    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = LLM, SamplingParams
    vllm_inputs = types.ModuleType("vllm.inputs")
    vllm_inputs.TokensPrompt = lambda prompt_token_ids: {"prompt_token_ids": prompt_token_ids}
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.inputs", vllm_inputs)

    from aicd.generation.vllm_engine import VLLMBackend

    backend = VLLMBackend("runs/x/final", max_new_tokens=7)
    assert dict(backend.stream([[5, 6, 7], [8, 9]], ["Question:"])) == {
        0: "So, the answer is 4.",
        1: "So, the answer is 4.",
    }
    assert calls["inputs"] == [{"prompt_token_ids": [5, 6, 7]}, {"prompt_token_ids": [8, 9]}]
    assert calls["params"] == {"temperature": 0.0, "max_tokens": 7, "stop": ["Question:"]}
    assert calls["engine"]["model"] == "runs/x/final" and calls["engine"]["generation_config"] == "vllm"
