"""The draw-a-digit page at /ui: static files shipped with the gateway, no build step."""

from pathlib import Path

from fastapi import APIRouter
from pydantic import BaseModel, Field

from gateway.deps import ContextDep

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
router = APIRouter(tags=["ui"])


class UiSettings(BaseModel):
    api_key_required: bool
    max_upload_bytes: int
    feedback_enabled: bool = Field(description="Whether POST /feedback stores corrections.")


@router.get("/ui/settings", response_model=UiSettings)
async def ui_settings(context: ContextDep) -> UiSettings:
    """What the page needs to know: whether to ask for an API key, how big uploads may be,
    whether to offer the "that's wrong" control."""
    settings = context.services.settings
    return UiSettings(
        api_key_required=bool(settings.api_keys),
        max_upload_bytes=settings.max_upload_bytes,
        feedback_enabled=settings.feedback_dir is not None,
    )
