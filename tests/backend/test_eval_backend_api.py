"""The evaluation backend fields pass through the API to the stored EvalConfig; bad ones are one 422 naming the field."""

from __future__ import annotations

import socket

from tests.support.completions_server import CompletionsServer


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_openai_backend_fields_reach_the_stored_config(client) -> None:
    server = CompletionsServer().start()
    try:
        body = {
            "config": {
                "model": "tiny:gpt2",
                "backend": "openai",
                "base_url": server.base_url,
                "served_model": "canned",
                "concurrency": 8,
            }
        }
        resp = client.post("/api/v1/evaluations", json=body)
    finally:
        server.close()
    assert resp.status_code == 202, resp.text
    config = resp.json()["config"]
    assert (config["backend"], config["base_url"], config["served_model"], config["concurrency"]) == (
        "openai",
        server.base_url,
        "canned",
        8,
    )
    client.post(f"/api/v1/evaluations/{resp.json()['id']}/cancel")


def test_bad_backend_input_is_one_422_naming_the_field_and_nothing_is_queued(client) -> None:
    def newest() -> list:
        return client.get("/api/v1/evaluations", params={"limit": 1}).json()["items"]

    before = newest()
    cases = [
        ({"model": "tiny:gpt2", "backend": "openai"}, "config.base_url"),
        ({"model": "tiny:gpt2", "backend": "sglang"}, "config.backend"),
        (
            {"model": "tiny:gpt2", "backend": "openai", "base_url": f"http://127.0.0.1:{_closed_port()}/v1"},
            "config.base_url",
        ),
    ]
    for config, field in cases:
        resp = client.post("/api/v1/evaluations", json={"config": config})
        assert resp.status_code == 422, resp.text
        assert resp.json()["detail"]["field"] == field, resp.json()
    assert newest() == before
