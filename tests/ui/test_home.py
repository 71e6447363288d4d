"""The home page (import -> annotate -> launch -> compare) and the offline-safe Streamlit settings."""

from __future__ import annotations

import tomllib

from tests.ui.conftest import REPO, Backend, app_test, free_port, no_traceback


def test_home_is_the_default_page_and_links_the_four_steps(ui_env: Backend) -> None:
    at = app_test()
    no_traceback(at)
    assert at.title[0].value == "AICD Workbench"
    links = [p.proto.label for p in at.get("page_link")]
    assert links[:4] == ["1. Import", "2. Annotate", "3. Launch", "4. Compare"], links


def test_home_reads_without_the_api(monkeypatch) -> None:
    monkeypatch.setenv("AICD_API_URL", f"http://127.0.0.1:{free_port()}")
    at = app_test()
    no_traceback(at)
    assert at.title[0].value == "AICD Workbench"


def test_streamlit_config_hides_deploy_and_favicon_is_local() -> None:
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["client"]["toolbarMode"] == "minimal"
    app = (REPO / "ui" / "app.py").read_text()
    assert "page_icon=str(FAVICON)" in app and (REPO / "ui" / "static" / "favicon.png").stat().st_size > 100
    for view in (REPO / "ui").rglob("*.py"):  # no emoji that needs an emoji font (U+1F000 and above)
        text = view.read_text()
        assert not [ch for ch in text if ord(ch) >= 0x1F000 or ch in "\ufe0f\u26a1\u23f9\u23f3"], view
