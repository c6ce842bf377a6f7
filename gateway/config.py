"""Gateway settings, read from `GATEWAY_*` environment variables (contract 4)."""

import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from contract import MODEL_NAME, VERSION_LABEL_PATTERN, VERSION_LABEL_RULE

# prometheus_client keeps each worker's metrics in this folder when it is set at its import.
MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

MIB = 1024 * 1024
# Decoded images above this many pixels are refused before decoding (GATEWAY_MAX_IMAGE_PIXELS).
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000


class Settings(BaseSettings):
    """Defaults work against a model server on this machine."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", env_file=".env", extra="ignore")

    tf_serving_url: str = "http://localhost:8501"
    # Both become part of TF Serving URLs: plain names only.
    model_name: str = Field(default=MODEL_NAME, pattern=r"^[A-Za-z0-9_.\-]{1,128}$")
    model_version: int | None = Field(default=None, ge=1)
    model_label: str | None = Field(default=None, pattern=VERSION_LABEL_PATTERN)
    timeout_s: float = Field(default=10.0, gt=0)
    connect_timeout_s: float = Field(default=2.0, gt=0)
    max_upload_bytes: int = Field(default=10 * MIB, ge=1024)
    max_image_pixels: int = Field(default=DEFAULT_MAX_IMAGE_PIXELS, ge=28 * 28)
    max_batch: int = Field(default=64, ge=1)
    max_in_flight: int = Field(default=256, ge=1)
    cors_allow_origins: Annotated[list[str], NoDecode] = []
    api_keys: Annotated[list[str], NoDecode] = []
    model_base_path: str | None = None
    version_cache_s: float = Field(default=1.0, ge=0)
    # Share (percent) of requests without a pin of their own sent to the canary label.
    canary_percent: float = 0.0
    canary_label: str = "canary"
    # Where POST /feedback stores corrected digits; unset turns the endpoint off.
    feedback_dir: Path | None = None
    # How many corrections the folder may hold (a few kB of disk each): past it, 507 until
    # an operator collects them. Anyone who can reach the gateway can send feedback.
    feedback_max_items: int = Field(default=10_000, ge=1)

    @field_validator("cors_allow_origins", "api_keys", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        # Plain comma-separated lists read better in env files than JSON arrays.
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("tf_serving_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(
                f"GATEWAY_TF_SERVING_URL={value!r} must start with http:// or https://"
            )
        return value.rstrip("/")

    @field_validator("canary_percent")
    @classmethod
    def _percent(cls, value: float) -> float:
        if math.isnan(value) or not 0 <= value <= 100:
            raise ValueError(f"GATEWAY_CANARY_PERCENT={value!r} must be between 0 and 100")
        return value

    @field_validator("canary_label")
    @classmethod
    def _plain_label(cls, value: str) -> str:
        if not re.fullmatch(VERSION_LABEL_PATTERN, value):
            raise ValueError(f"GATEWAY_CANARY_LABEL={value!r} must be {VERSION_LABEL_RULE}")
        return value

    @field_validator("feedback_dir", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `GATEWAY_FEEDBACK_DIR=` in an env file means off, not the working directory.
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @model_validator(mode="after")
    def _one_pin(self) -> "Settings":
        if self.model_version is not None and self.model_label:
            raise ValueError(
                "Set GATEWAY_MODEL_VERSION or GATEWAY_MODEL_LABEL, not both "
                f"({self.model_version!r} and {self.model_label!r})"
            )
        if self.canary_percent > 0 and self.canary_label == self.model_label:
            raise ValueError(
                f"GATEWAY_CANARY_LABEL={self.canary_label!r} is also GATEWAY_MODEL_LABEL: "
                "the canary must be another label than the one every other request goes to"
            )
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
