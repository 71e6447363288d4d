"""HTTP client of the workbench API: the UI's only way to reach data (no backend or aicd imports).

Every failure — backend down, timeout, 4xx/5xx — becomes one `ApiError` whose message is fit to show a user;
pages render it with `ui.components.common.show_error` instead of a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"


class ApiError(Exception):
    """A request failed; `message` says why in words, `status` is the HTTP status (None: no response)."""

    def __init__(self, message: str, *, status: int | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.field = field

    @property
    def unreachable(self) -> bool:
        return self.status is None


def api_url() -> str:
    return os.environ.get("AICD_API_URL", DEFAULT_URL).rstrip("/")


def api_token() -> str | None:
    return os.environ.get("AICD_API_TOKEN") or None


def _error_from(resp: httpx.Response) -> ApiError:
    message, field = f"HTTP {resp.status_code}", None
    try:
        detail = resp.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, dict):
        message = str(detail.get("message") or message)
        field = detail.get("field")
    elif isinstance(detail, str):
        message = detail
    elif resp.text:
        message = f"{message}: {resp.text[:200]}"
    if resp.status_code == 401:
        message = f"{message} (set AICD_API_TOKEN for the UI)"
    return ApiError(message, status=resp.status_code, field=field)


class ApiClient:
    """Thin typed-by-convention wrapper over the REST API under /api/v1 (JSON in, JSON out)."""

    def __init__(self, base_url: str | None = None, token: str | None = None, timeout: float = 15.0):
        self.base_url = (base_url or api_url()).rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    # -- plumbing -------------------------------------------------------------------------------------------
    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise ApiError(
                f"the backend at {self.base_url} did not answer in time ({method} {path})"
            ) from None
        except httpx.HTTPError as exc:
            raise ApiError(
                f"cannot reach the backend at {self.base_url} ({type(exc).__name__}); "
                "is it running? Start everything with `aicd up` or set AICD_API_URL."
            ) from None
        if resp.status_code >= 400:
            raise _error_from(resp)
        if resp.status_code == 204 or not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            raise ApiError(
                f"the backend answered {method} {path} with something that is not JSON",
                status=resp.status_code,
            ) from None

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=_params(params))

    def post(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return self.request("POST", path, json=json, **kwargs)

    def page(self, path: str, *, cursor: str | None = None, limit: int = 50, **params: Any) -> dict[str, Any]:
        return self.get(path, cursor=cursor, limit=limit, **params)

    def all(
        self, path: str, *, max_items: int = 5000, limit: int = 200, **params: Any
    ) -> list[dict[str, Any]]:
        """Follow `next_cursor` until the end (or `max_items`)."""
        out: list[dict[str, Any]] = []
        cursor = None
        while len(out) < max_items:
            page = self.page(path, cursor=cursor, limit=limit, **params)
            out.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return out[:max_items]

    def file_url(self, artifact_id: int) -> str:
        return f"{self.base_url}/api/v1/artifacts/{artifact_id}/download"

    def download(self, artifact_id: int) -> bytes:
        try:
            resp = self._http.get(f"/api/v1/artifacts/{artifact_id}/download")
        except httpx.HTTPError as exc:
            raise ApiError(f"cannot reach the backend at {self.base_url} ({type(exc).__name__})") from None
        if resp.status_code >= 400:
            raise _error_from(resp)
        return resp.content

    # -- resources ------------------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return self.get("/health")

    def datasets(self) -> list[dict[str, Any]]:
        return self.all("/api/v1/datasets")

    def dataset(self, dataset_id: int) -> dict[str, Any]:
        return self.get(f"/api/v1/datasets/{dataset_id}")

    def examples(self, dataset_id: int, *, cursor: str | None = None, limit: int = 20) -> dict[str, Any]:
        return self.page(f"/api/v1/datasets/{dataset_id}/examples", cursor=cursor, limit=limit)

    def dataset_stats(self, dataset_id: int) -> dict[str, Any]:
        return self.get(f"/api/v1/preview/datasets/{dataset_id}/stats")

    def upload_dataset(
        self, name: str, content: bytes, *, filename: str = "upload.jsonl", description: str = ""
    ) -> dict[str, Any]:
        return self.request(
            "POST",
            "/api/v1/datasets",
            data={"name": name, "description": description},
            files={"file": (filename, content, "application/x-ndjson")},
        )

    def import_dataset(
        self,
        name: str,
        source: str,
        *,
        split: str = "train",
        limit: int | None = None,
        seed: int = 0,
        description: str = "",
    ) -> dict[str, Any]:
        body = {
            "name": name,
            "source": source,
            "split": split,
            "limit": limit,
            "seed": seed,
            "description": description,
        }
        return self.post("/api/v1/datasets/import", json=body)

    def delete_dataset(self, dataset_id: int) -> None:
        self.request("DELETE", f"/api/v1/datasets/{dataset_id}")

    def builtins(self) -> list[dict[str, Any]]:
        return self.all("/api/v1/preview/builtins")

    def annotations(self, dataset_id: int | None = None) -> list[dict[str, Any]]:
        return self.all("/api/v1/annotations", max_items=200, dataset_id=dataset_id)

    def annotation(self, job_id: int) -> dict[str, Any]:
        return self.get(f"/api/v1/annotations/{job_id}")

    def create_annotation(self, dataset_id: int, config: dict[str, Any]) -> dict[str, Any]:
        return self.post("/api/v1/annotations", json={"dataset_id": dataset_id, "config": config})

    def teacher_keys(self) -> list[dict[str, Any]]:
        """Endpoints with a key stored on the server (the keys themselves are never returned)."""
        return self.all("/api/v1/teacher-keys")

    def forget_teacher_key(self, base_url: str | None) -> None:
        self.request("DELETE", "/api/v1/teacher-keys", params=_params({"base_url": base_url}))

    def runs(
        self, *, status: str | None = None, sweep_id: int | None = None, max_items: int = 1000
    ) -> list[dict[str, Any]]:
        return self.all("/api/v1/runs", max_items=max_items, status=status, sweep_id=sweep_id)

    def run(self, run_id: int) -> dict[str, Any]:
        return self.get(f"/api/v1/runs/{run_id}")

    def create_run(
        self, config: dict[str, Any], *, name: str | None = None, dataset_id: int | None = None
    ) -> dict[str, Any]:
        return self.post("/api/v1/runs", json={"name": name, "dataset_id": dataset_id, "config": config})

    def metrics(self, run_id: int, after: int | None = None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        cursor = str(after) if after is not None else None
        while True:
            page = self.page(f"/api/v1/runs/{run_id}/metrics", cursor=cursor, limit=500)
            out.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                return out

    def evaluations(
        self, *, run_id: int | None = None, status: str | None = None, max_items: int = 2000
    ) -> list[dict[str, Any]]:
        return self.all("/api/v1/evaluations", max_items=max_items, run_id=run_id, status=status)

    def evaluation(self, evaluation_id: int) -> dict[str, Any]:
        return self.get(f"/api/v1/evaluations/{evaluation_id}")

    def create_evaluation(
        self,
        config: dict[str, Any],
        *,
        run_id: int | None = None,
        dataset_id: int | None = None,
        shots_dataset_id: int | None = None,
    ) -> dict[str, Any]:
        body = {
            "run_id": run_id,
            "dataset_id": dataset_id,
            "shots_dataset_id": shots_dataset_id,
            "config": config,
        }
        return self.post("/api/v1/evaluations", json=body)

    def sweeps(self) -> list[dict[str, Any]]:
        return self.all("/api/v1/sweeps", max_items=500)

    def sweep(self, sweep_id: int) -> dict[str, Any]:
        return self.get(f"/api/v1/sweeps/{sweep_id}")

    def sweep_table(self, sweep_id: int) -> dict[str, Any]:
        return self.get(f"/api/v1/sweeps/{sweep_id}/table")

    def run_live(
        self, run_id: int, *, metrics_after: int | None = None, sweeps: list[int] | None = None
    ) -> dict[str, Any]:
        """One read of a run's live panel: `run`, `metrics` (a page of the points after `metrics_after`),
        `evaluations` (newest first), `sweep` (its state, or None), and the `sweeps` the sidebar follows
        (`followed`, with their runs, as `status` gives them)."""
        return self.get(f"/api/v1/runs/{run_id}/live", metrics_after=metrics_after, sweep=sweeps or None)

    def sweep_live(self, sweep_id: int, *, sweeps: list[int] | None = None) -> dict[str, Any]:
        """One read of a sweep's live panel: `sweep`, its results `table`, its `runs` (state, progress) and
        `followed` (as in `run_live`)."""
        return self.get(f"/api/v1/sweeps/{sweep_id}/live", sweep=sweeps or None)

    def annotation_live(self, job_id: int, *, sweeps: list[int] | None = None) -> dict[str, Any]:
        """One read of an annotation job's live panel: the `job` and `followed` (as in `run_live`)."""
        return self.get(f"/api/v1/annotations/{job_id}/live", sweep=sweeps or None)

    def create_sweep(self, config: dict[str, Any], *, name: str | None = None) -> dict[str, Any]:
        return self.post("/api/v1/sweeps", json={"name": name, "config": config})

    def job_action(self, kind: str, job_id: int, action: str) -> dict[str, Any]:
        """kind: annotations | runs | evaluations | sweeps; action: cancel | resume."""
        return self.post(f"/api/v1/{kind}/{job_id}/{action}")

    def artifacts(self, **params: Any) -> list[dict[str, Any]]:
        return self.all("/api/v1/artifacts", max_items=500, **params)

    def compare(
        self,
        *,
        run_ids: Iterable[int] = (),
        evaluation_ids: Iterable[int] = (),
        shots: int | None = None,
        seed: int | None = None,
        disagree: bool = False,
        cursor: str | None = None,
        limit: int = 20,
    ) -> dict[str, Any]:
        params = {
            "run_id": list(run_ids),
            "evaluation_id": list(evaluation_ids),
            "shots": shots,
            "seed": seed,
            "disagree": disagree,
            "cursor": cursor,
            "limit": limit,
        }
        return self.get("/api/v1/compare", **params)

    def preview_schedule(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.post("/api/v1/preview/schedule", json=body)

    def preview_episode(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.post("/api/v1/preview/episode", json=body)

    def preview_prompt(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.post("/api/v1/preview/prompt", json=body)

    def shipped_configs(self) -> list[dict[str, Any]]:
        return self.all("/api/v1/preview/configs")

    def objectives(self) -> dict[str, Any]:
        """The objective registry: `objectives` (label, target, weights, ω, demonstrations), `omega_schedules`."""
        return self.get("/api/v1/objectives")

    def status(self, sweeps: list[int] | None = None) -> dict[str, Any]:
        """One read of every active job (`jobs`, `active`) and of the `sweeps` followed, with their runs."""
        return self.get("/api/v1/status", sweep=sweeps or None)

    def presets(self) -> dict[str, Any]:
        """Launch presets (`presets`: name, label, description, train, eval) and the `default` one's name."""
        return self.get("/api/v1/presets")

    def aggregate_results(self, observations: list[dict[str, Any]], by: list[str]) -> dict[str, Any]:
        """Cells (mean, std, n, text) of `observations` grouped by `by`, by the one rule of aicd.results."""
        return self.post("/api/v1/results/aggregate", json={"observations": observations, "by": by})


def _params(params: dict[str, Any]) -> dict[str, Any]:
    """Drop None values and spell booleans the way FastAPI parses them."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if value is None or value == []:
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else value
    return out
