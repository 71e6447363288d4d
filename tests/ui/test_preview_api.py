"""The UI's helper endpoints (backend/api/routes/preview.py) over real HTTP, and that they never pull torch into
the API process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from aicd.objectives import omega_weights
from tests.support.word_tokenizer import save_word_tokenizer
from tests.ui.conftest import REPO, Backend, Seeded, backend_env
from ui.client import ApiError


@pytest.mark.parametrize("schedule", ["paper", "constant", "linear", "exponential", "adaptive"])
def test_schedule_preview_is_the_core_schedule(backend: Backend, schedule: str) -> None:
    got = backend.client.preview_schedule({"n_shots": 5, "schedule": schedule, "omega": 0.2})
    assert got["weights"] == pytest.approx(omega_weights(schedule, 5, omega=0.2))


def test_schedule_preview_gives_the_loss_weights_of_the_objective(backend: Backend) -> None:
    """The ω designer draws what each objective's loss actually weights: CondGen only the last shot."""
    from aicd.objective_registry import shot_weights

    body = {"n_shots": 4, "schedule": "paper", "omega": 0.2}
    assert "loss_weights" not in backend.client.preview_schedule(body)
    paper = omega_weights("paper", 4, omega=0.2)
    for objective in ("aicd", "condgen", "lm", "nocot"):
        got = backend.client.preview_schedule({**body, "objective": objective})
        assert got["weights"] == pytest.approx(paper)
        assert got["loss_weights"] == pytest.approx(shot_weights(objective, paper))
    condgen = backend.client.preview_schedule({**body, "objective": "condgen"})
    assert condgen["loss_weights"] == [0.0, 0.0, 0.0, 1.0]
    with pytest.raises(ApiError) as info:
        backend.client.preview_schedule({**body, "objective": "nope"})
    assert info.value.status == 422 and info.value.field == "objective"


def test_schedule_preview_names_the_bad_field(backend: Backend) -> None:
    with pytest.raises(ApiError) as info:
        backend.client.preview_schedule({"n_shots": 3, "schedule": "custom", "weights": [0.5, 1.0]})
    assert info.value.status == 422 and info.value.field == "weights" and "n_shots=3" in info.value.message


def test_episode_preview_spans_carry_the_schedule_weights(backend: Backend, seeded: Seeded) -> None:
    got = backend.client.preview_episode(
        {
            "dataset_id": seeded.train["id"],
            "n_shots": 3,
            "schedule": "custom",
            "weights": [0.0, 0.5, 1.0],
            "objective": "aicd",
            "seed": 1,
        }
    )
    targets = [s for s in got["spans"] if s["kind"] == "target"]
    assert [s["weight"] for s in targets] == [0.0, 0.5, 1.0]
    assert all(s["weight"] == 0.0 for s in got["spans"] if s["kind"] == "prompt")
    assert got["spans"][0]["text"].startswith("Question: ")
    assert got["n_tokens"] == got["spans"][-1]["end"]  # byte-level: spans tile the episode
    assert got["total_weight"] == pytest.approx(
        sum(s["weight"] * (s["end"] - s["start"]) for s in got["spans"])
    )
    condgen = backend.client.preview_episode(
        {"dataset_id": seeded.train["id"], "n_shots": 3, "objective": "condgen", "seed": 1}
    )
    assert [s["weight"] for s in condgen["spans"] if s["kind"] == "target"] == [0.0, 0.0, 1.0]
    with pytest.raises(ApiError) as info:  # no rationales to build an AICD episode from
        backend.client.preview_episode({"dataset_id": seeded.bare["id"], "n_shots": 2})
    assert info.value.status == 422 and "rationale" in info.value.message


def test_episode_preview_uses_the_students_tokenizer_when_the_server_has_it(
    backend: Backend, seeded: Seeded, tmp_path: Path
) -> None:
    body = {"dataset_id": seeded.train["id"], "n_shots": 3, "objective": "aicd", "seed": 1}
    by_bytes = backend.client.preview_episode(body)
    student = save_word_tokenizer(tmp_path / "student")
    by_words = backend.client.preview_episode({**body, "model": str(student)})
    assert by_words["tokenizer"].startswith(f"{student} (") and "byte-level" not in by_words["tokenizer"]
    assert by_words["n_tokens"] < by_bytes["n_tokens"] / 2  # words, not bytes
    assert [s["weight"] for s in by_words["spans"] if s["kind"] == "target"] == [0.1, 0.1, 1.0]
    assert [s["text"] for s in by_words["spans"]] == [s["text"] for s in by_bytes["spans"]]
    missing = backend.client.preview_episode({**body, "model": "nobody/not-downloaded"})
    assert "the tokenizer of nobody/not-downloaded is not available on the server" in missing["tokenizer"]
    assert missing["n_tokens"] == by_bytes["n_tokens"]  # falls back to bytes, and says so


def test_prompt_preview_and_dataset_stats(backend: Backend, seeded: Seeded) -> None:
    api = backend.client
    first = api.examples(seeded.train["id"], limit=2)["items"][1]
    got = api.preview_prompt(
        {"dataset_id": seeded.train["id"], "index": 1, "prompt_template": "Q: {question} (answer {answer})"}
    )
    assert got["prompt"] == f"Q: {first['question']} (answer {first['answer']})"
    with pytest.raises(ApiError) as info:
        api.preview_prompt({"dataset_id": seeded.train["id"], "prompt_template": "Q: {question}"})
    assert info.value.status == 422 and "{answer}" in info.value.message
    stats = api.dataset_stats(seeded.train["id"])
    items = api.examples(seeded.train["id"], limit=100)["items"]
    assert stats["questions"] == len(items) == 24
    assert stats["rationales"] == sum(len(e["rationales"]) for e in items) == sum(stats["by_source"].values())
    assert stats["with_rationale"] == sum(bool(e["rationales"]) for e in items)
    assert api.dataset_stats(seeded.bare["id"])["rationales"] == 0


def test_previews_never_import_torch_into_the_api(tmp_path) -> None:
    code = """
import sys
from fastapi.testclient import TestClient
from backend.main import app
with TestClient(app) as c:
    ds = c.post("/api/v1/datasets/import", json={"name": "s", "source": "svamp", "limit": 6}).json()
    r = c.post("/api/v1/preview/episode", json={"dataset_id": ds["id"], "n_shots": 2})
    assert r.status_code == 200, r.text
    r = c.post("/api/v1/preview/episode", json={"dataset_id": ds["id"], "n_shots": 2, "model": sys.argv[1]})
    assert r.status_code == 200 and "byte-level" not in r.json()["tokenizer"], r.text
    assert c.post("/api/v1/preview/schedule", json={"n_shots": 2}).status_code == 200
    assert c.get("/api/v1/preview/configs").status_code == 200
print([m for m in ("torch", "worker") if m in sys.modules])
"""
    out = subprocess.run(
        [sys.executable, "-c", code, str(save_word_tokenizer(tmp_path / "student"))],
        cwd=REPO,
        env=backend_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_shipped_configs_say_which_run_only_with_the_cli(backend: Backend) -> None:
    shipped = {c["name"]: c for c in backend.client.shipped_configs()}
    assert shipped["fig2-shots"]["server"] is True and shipped["fig2-shots"]["note"] is None
    paper = shipped["paper-fig2-shots"]
    assert paper["server"] is False and "annotate, untuned" in paper["note"] and "aicd sweep" in paper["note"]
