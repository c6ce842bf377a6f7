"""GET /ui/settings (gateway/routes/ui.py): what the draw-a-digit page is told.

The page itself and its Content-Security-Policy are in test_middleware.py."""

from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient


def test_ui_settings_tell_the_page_about_api_keys(make_client: Callable[..., TestClient]) -> None:
    assert make_client().get("/ui/settings").json()["api_key_required"] is False
    assert make_client(api_keys=["k"]).get("/ui/settings").json()["api_key_required"] is True


def test_ui_settings_tell_the_page_the_upload_limit_and_feedback(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    default = make_client().get("/ui/settings").json()
    configured = make_client(max_upload_bytes=4096, feedback_dir=tmp_path).get("/ui/settings")

    assert default["max_upload_bytes"] == 10 * 1024 * 1024
    assert default["feedback_enabled"] is False
    assert configured.json() == {
        "api_key_required": False,
        "max_upload_bytes": 4096,
        "feedback_enabled": True,
    }
