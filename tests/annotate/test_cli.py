"""`aicd annotate` as a real subprocess: SIGKILL + --resume, Ctrl-C, clear errors, no key leaks, gold source."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from aicd.annotate import read_raw
from aicd.data import read_examples

REPO = Path(__file__).resolve().parents[2]


def _env(key: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    if key is not None:
        env["OPENAI_API_KEY"] = key
    return env


def _cmd(dataset: Path, out: Path, base_url: str | None, *extra: str) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "aicd",
        "annotate",
        "--dataset",
        str(dataset),
        "--out",
        str(out),
        "--teacher",
        "fake-teacher",
        "--no-progress",
        "--timeout",
        "2",
        "--set",
        "backoff_initial=0.02",
    ]
    if base_url:
        cmd += ["--base-url", base_url]
    return cmd + list(extra)


def _run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def _qid(question: str | None) -> str:
    assert question is not None
    return f"q{int(question.split(':')[0].removeprefix('Item ')):04d}"


def _wait_for_lines(path: Path, n: int, proc: subprocess.Popen, deadline_s: float = 120) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end and proc.poll() is None:
        if path.exists() and path.read_bytes().count(b"\n") >= n:
            return
        time.sleep(0.01)
    raise AssertionError(f"annotate ended or stalled before writing {n} records (rc={proc.poll()})")


def test_sigkill_then_resume_stores_600_and_never_re_asks(teacher, dataset_file, tmp_path: Path) -> None:
    base_url, server = teacher
    server.options.latency = 0.05
    server.options.fail_rate = 0.1
    dataset, out = dataset_file(200), tmp_path / "cot.jsonl"
    raw = tmp_path / "cot.raw.jsonl"
    proc = subprocess.Popen(
        _cmd(dataset, out, base_url, "--concurrency", "4"),
        cwd=REPO,
        env=_env("sk-x"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_lines(raw, 90, proc)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = Counter(r.question_id for r in read_raw(raw) if r.status == "ok")
    assert 30 <= sum(before.values()) < 600
    assert not out.exists()

    server.reset()
    done = _run(_cmd(dataset, out, base_url, "--concurrency", "8", "--resume"), _env("sk-x"))
    assert done.returncode == 0, done.stderr

    records = read_raw(raw)
    ok = [r for r in records if r.status == "ok"]
    assert len(ok) == 600 and len({r.key for r in ok}) == 600
    assert {(r.question_id, r.sample_index) for r in ok} == {
        (f"q{i:04d}", s) for i in range(200) for s in range(3)
    }
    for req in server.requests:  # nothing already stored was asked for again
        qid = _qid(req.question)
        assert before[qid] < 3
        assert req.n == 3 - before[qid]
    assert sum(r.n for r in server.ok_requests()) == 600 - sum(before.values())
    examples = read_examples(out)
    assert examples and all(
        r.text.endswith("So, the answer is " + ex.answer + ".") for ex in examples for r in ex.rationales
    )
    assert (tmp_path / "cot.report.json").exists()


def test_ctrl_c_stops_cleanly_and_resume_finishes(teacher, dataset_file, tmp_path: Path) -> None:
    base_url, server = teacher
    server.options.latency = 0.05
    dataset, out = dataset_file(120), tmp_path / "cot.jsonl"
    raw = tmp_path / "cot.raw.jsonl"
    proc = subprocess.Popen(
        _cmd(dataset, out, base_url, "--concurrency", "2"),
        cwd=REPO,
        env=_env("sk-x"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_lines(raw, 30, proc)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "--resume" in stderr and "Traceback" not in stderr
    stored = read_raw(raw)
    assert 30 <= len(stored) < 360 and all(r.status == "ok" for r in stored)
    assert out.exists()  # what arrived is already usable
    done = _run(_cmd(dataset, out, base_url, "--resume"), _env("sk-x"))
    assert done.returncode == 0, done.stderr
    assert len({r.key for r in read_raw(raw)}) == len(read_raw(raw)) == 360


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing_key_local", "requires an API key"),
        ("missing_key_openai", "no API key"),
        ("unreachable", "cannot reach the teacher server"),
        ("unreachable_no_preflight", "cannot reach the teacher server"),
        ("unknown_model", "unknown teacher model 'gpt-nope'"),
        ("unknown_model_no_preflight", "unknown teacher model 'gpt-nope'"),
    ],
)
def test_setup_errors_give_one_line_and_write_nothing(
    teacher, dataset_file, tmp_path: Path, case: str, message: str
) -> None:
    base_url, server = teacher
    server.options.require_key = "sk-needed"
    dataset, out = dataset_file(5), tmp_path / "out" / "cot.jsonl"
    key: str | None = "sk-needed"
    extra: list[str] = []
    url: str | None = base_url
    if case == "missing_key_local":
        key = None
    elif case == "missing_key_openai":
        key, url = None, None
    elif case.startswith("unreachable"):
        url = "http://127.0.0.1:9/v1"
        extra = ["--set", "preflight=false"] if "no_preflight" in case else []
    else:
        extra = ["--teacher", "gpt-nope"] + (["--set", "preflight=false"] if "no_preflight" in case else [])
    result = _run(_cmd(dataset, out, url, *extra), _env(key))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.stderr
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_api_key_never_leaks(teacher, dataset_file, tmp_path: Path) -> None:
    base_url, server = teacher
    key = f"sk-LEAK-{uuid.uuid4().hex}"
    server.options.require_key = key
    server.options.fail_rate = 0.3
    dataset, out = dataset_file(20), tmp_path / "cot.jsonl"
    server.options.fail_questions = ("Item 3:",)  # one question fails for good: its error is stored
    runs = [_run(_cmd(dataset, out, base_url, "--max-retries", "1"), _env(key))]
    assert runs[0].returncode == 1
    server.options.fail_questions = ()
    runs += [
        _run(_cmd(dataset, out, base_url, "--resume", "--api-key", key), _env(None)),
        _run(_cmd(dataset, out, base_url, "--resume"), _env(key + "-wrong")),  # the server echoes the bad key
        _run(_cmd(dataset, out, "http://127.0.0.1:9/v1", "--resume"), _env(key)),
    ]
    assert runs[2].returncode == 2 and "rejected the API key" in runs[2].stderr
    assert any(r.status == "failed" for r in read_raw(tmp_path / "cot.raw.jsonl"))
    texts = [r.stdout + r.stderr for r in runs] + [p.read_text() for p in tmp_path.rglob("*") if p.is_file()]
    assert all(key not in text for text in texts)


def test_existing_store_needs_resume_or_overwrite(teacher, dataset_file, tmp_path: Path) -> None:
    base_url, server = teacher
    dataset, out = dataset_file(4), tmp_path / "cot.jsonl"
    assert _run(_cmd(dataset, out, base_url), _env("k")).returncode == 0
    again = _run(_cmd(dataset, out, base_url), _env("k"))
    assert again.returncode == 2 and "--resume" in again.stderr
    server.reset()
    fresh = _run(_cmd(dataset, out, base_url, "--overwrite", "--k", "1"), _env("k"))
    assert fresh.returncode == 0 and len(server.ok_requests()) == 4
    assert len(read_raw(tmp_path / "cot.raw.jsonl")) == 4


def test_gold_source_needs_no_teacher(dataset_file, tmp_path: Path) -> None:
    dataset, out = dataset_file(6, gold=True), tmp_path / "gold.jsonl"
    result = _run(
        [
            sys.executable,
            "-m",
            "aicd",
            "annotate",
            "--source",
            "gold",
            "--dataset",
            str(dataset),
            "--out",
            str(out),
            "--no-progress",
        ],
        _env(None),
    )
    assert result.returncode == 0, result.stderr
    examples = read_examples(out)
    assert len(examples) == 6
    for ex in examples:
        assert [r.source for r in ex.rationales] == ["gold"]
        assert (
            ex.rationales[0].text == f"{ex.id[1:].lstrip('0') or '0'} + {ex.id[1:].lstrip('0') or '0'} = "
            f"{ex.answer}. So, the answer is {ex.answer}."
        )


def test_prompt_template_from_a_file(teacher, dataset_file, tmp_path: Path) -> None:
    base_url, server = teacher
    template = tmp_path / "prompt.txt"
    template.write_text("Question: {question} Hint: The answer should be {answer}. Explain it to a child.\n")
    dataset, out = dataset_file(3), tmp_path / "cot.jsonl"
    result = _run(_cmd(dataset, out, base_url, "--prompt", str(template), "--k", "2"), _env("k"))
    assert result.returncode == 0, result.stderr
    assert len(server.ok_requests()) == 3
    assert all(r.prompt.endswith("Explain it to a child.") and r.n == 2 for r in server.ok_requests())


def test_api_key_help_recommends_the_environment_variable() -> None:
    from typer.testing import CliRunner

    from aicd.cli import app

    result = CliRunner().invoke(app, ["annotate", "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0
    text = " ".join(result.output.replace("│", " ").split())  # rich wraps the help in a box
    assert "prefer the variable" in text and "ps" in text
