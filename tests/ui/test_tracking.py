"""The Runs page's link to a run's MLflow page, resolved through MLflow's REST API (a fake MLflow server here)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from streamlit.testing.v1 import AppTest


class FakeMlflow(BaseHTTPRequestHandler):
    def _send(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        assert self.path.startswith("/api/2.0/mlflow/experiments/get-by-name?experiment_name=aicd")
        self._send({"experiment": {"experiment_id": "7", "name": "aicd"}})

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert body["experiment_ids"] == ["7"]
        hit = body["filter"] == "attributes.run_name = 'tracked-run'"
        self._send({"runs": [{"info": {"run_id": "abc123"}}]} if hit else {})

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def mlflow_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeMlflow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _link(run: dict) -> None:
    from ui.components import tracking

    tracking.mlflow_link(run)


def _buttons(run: dict) -> list:
    at = AppTest.from_function(_link, args=(run,), default_timeout=30)
    at.run()
    assert not at.exception
    return at.get("link_button")


def test_a_run_reporting_to_mlflow_links_its_mlflow_run(mlflow_server: str, monkeypatch) -> None:
    import streamlit as st

    st.cache_data.clear()
    tracked = {"name": "tracked-run", "config": {"report_to": "mlflow"}}
    assert _buttons(tracked) == []  # no AICD_MLFLOW_TRACKING_URI: no link
    monkeypatch.setenv("AICD_MLFLOW_TRACKING_URI", mlflow_server)
    (button,) = _buttons(tracked)
    assert button.proto.url == f"{mlflow_server}/#/experiments/7/runs/abc123"
    (other,) = _buttons({"name": "not-logged", "config": {"report_to": "mlflow"}})
    assert other.proto.url == f"{mlflow_server}/#/experiments/7"
    assert _buttons({"name": "tracked-run", "config": {"report_to": "none"}}) == []
