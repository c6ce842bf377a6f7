"""Request and response bodies of the gateway's public API (contract 3)."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, InstanceOf, WithJsonSchema

from contract import NUM_CLASSES
from gateway.parameters import VERSION_PATTERN, is_version

UPLOAD_HINT = (
    "Send images as multipart/form-data: field 'file' for /predict and /read, 'files' for "
    "/predict/batch, 'file' and 'label' (0-9) for /feedback."
)
PROBABILITIES_EXAMPLE = [0.0, 0.0, 0.0, 0.01, 0.0, 0.98, 0.0, 0.0, 0.01, 0.0]


class Message(BaseModel):
    message: str = Field(examples=["MNIST Classification API"])


class ErrorBody(BaseModel):
    detail: str = Field(
        description="A sentence saying what went wrong and what to do about it.",
        examples=["No digit found: the image is blank or nearly uniform."],
    )


def validation_detail(errors: Sequence[Any]) -> str:
    """One sentence for pydantic's validation errors of a request, and what to send instead."""
    problems = []
    for error in errors:
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        message = error.get("msg", "invalid")
        problems.append(f"{where}: {message}" if where else message)
    return "Invalid request: " + "; ".join(problems) + ". " + UPLOAD_HINT


def error_responses(descriptions: dict[int, str]) -> dict[int | str, dict[str, object]]:
    """OpenAPI `responses` for a route: each error status with its body and description."""
    return {
        status: {"model": ErrorBody, "description": description}
        for status, description in descriptions.items()
    }


class DigitPrediction(BaseModel):
    predicted_digit: int = Field(
        ge=0, le=NUM_CLASSES - 1, description="The most likely digit.", examples=[5]
    )
    confidence: float = Field(
        ge=0, le=1, description="The model's probability for that digit.", examples=[0.98]
    )
    probabilities: list[float] = Field(
        min_length=NUM_CLASSES,
        max_length=NUM_CLASSES,
        description="Probability of each digit 0-9.",
        examples=[PROBABILITIES_EXAMPLE],
    )
    normalized_image: str | None = Field(
        default=None,
        description="With ?include_image=true: the 28x28 image the model saw, as a PNG data URL.",
    )


class PredictResponse(DigitPrediction):
    model_version: str = Field(description="The model version that answered.", examples=["3"])


class BatchItem(DigitPrediction):
    filename: str | None = Field(default=None, examples=["five.png"])


class FileError(BaseModel):
    status: int = Field(
        description="The HTTP status /predict would give this file alone.", examples=[422]
    )
    detail: str = Field(
        description="A sentence saying what is wrong with the file and what to do.",
        examples=["No digit found: the image is blank or nearly uniform; draw a digit ..."],
    )


class BatchFailure(BaseModel):
    """A file of the batch that could not be read as one digit; the others are answered."""

    filename: str | None = Field(default=None, examples=["blank.png"])
    error: FileError


class BatchPredictResponse(BaseModel):
    predictions: list[BatchItem | BatchFailure] = Field(
        description="One entry per file, in the order sent: a prediction, or the file's error."
    )
    model_version: str | None = Field(
        description="The model version that answered; null when no file could be read.",
        examples=["3"],
    )


class ReadDigit(BaseModel):
    digit: int = Field(ge=0, le=NUM_CLASSES - 1, examples=[4])
    confidence: float = Field(
        ge=0, le=1, description="The model's probability for that digit.", examples=[0.99]
    )
    box: list[int] = Field(
        min_length=4,
        max_length=4,
        description="Where the digit is: x0, y0, x1, y1 in the upload's pixels (after its EXIF "
        "orientation), x1 and y1 exclusive.",
        examples=[[12, 30, 64, 110]],
    )


class ReadResponse(BaseModel):
    number: str = Field(
        pattern=r"^[0-9]{1,20}$", description="The digits, left to right.", examples=["4271"]
    )
    digits: list[ReadDigit] = Field(description="Each digit, left to right.")
    confidence: float = Field(
        ge=0,
        le=1,
        description="The chance that every digit is right (and none missing or extra).",
        examples=[0.96],
    )
    model_version: str = Field(description="The model version that answered.", examples=["3"])


class Health(BaseModel):
    status: str = Field(examples=["ok"])


class Readiness(BaseModel):
    status: str = Field(examples=["ready"])
    model_version: str = Field(examples=["3"])


class VersionState(BaseModel):
    version: str = Field(examples=["3"])
    state: str = Field(examples=["AVAILABLE"])
    error_message: str = ""


class ModelInfo(BaseModel):
    name: str = Field(examples=["mnist"])
    serving_version: str | None = Field(
        description="The version /predict uses now.", examples=["3"]
    )
    versions: list[VersionState]
    pinned_version: int | None = None
    pinned_label: str | None = None
    canary_percent: float = Field(
        default=0.0,
        description="Share (percent) of requests without a pin of their own tried on the canary.",
        examples=[20.0],
    )
    canary_label: str | None = Field(
        default=None, description="The canary's label, when the canary is on.", examples=["canary"]
    )
    canary_version: str | None = Field(
        default=None,
        description="The version the canary label points at now; null when it has none.",
        examples=["4"],
    )
    model_card: dict[str, object] | None = Field(
        default=None,
        description="The model card published with the version, when the gateway can read it.",
    )


@dataclass(frozen=True, slots=True)
class Part:
    """One part of a multipart body (gateway/uploads.py reads them into the forms below)."""

    name: str
    filename: str | None
    data: bytes


# A file field of a multipart body, as OpenAPI 3.1 describes binary content.
UploadedFile = Annotated[
    InstanceOf[Part],
    WithJsonSchema({"type": "string", "contentMediaType": "application/octet-stream"}),
]


class PredictForm(BaseModel):
    """The multipart body of POST /predict."""

    file: UploadedFile = Field(
        description="An image of one digit: PNG, JPEG, GIF, WebP, BMP or TIFF."
    )


class ReadForm(BaseModel):
    """The multipart body of POST /read."""

    file: UploadedFile = Field(
        description="An image of a number: up to 20 digits in one row, handwritten or printed."
    )


class BatchForm(BaseModel):
    """The multipart body of POST /predict/batch."""

    files: list[UploadedFile] = Field(description="Several digit images, one upstream call.")


def _version(text: str) -> str:
    if not is_version(text):
        raise ValueError("must be a positive integer of at most 19 digits")
    return text


# The rule the version parameters follow (gateway/parameters.py), for a form field.
VersionText = Annotated[str, Field(pattern=VERSION_PATTERN), AfterValidator(_version)]


class FeedbackForm(BaseModel):
    """The multipart body of POST /feedback."""

    file: UploadedFile = Field(description="The image that was classified (the same upload).")
    label: int = Field(ge=0, le=NUM_CLASSES - 1, description="The digit the image really shows.")
    predicted_digit: int | None = Field(
        default=None, ge=0, le=NUM_CLASSES - 1, description="The digit /predict answered."
    )
    model_version: VersionText | None = Field(
        default=None, description="The model_version /predict answered."
    )


class FeedbackResponse(BaseModel):
    id: str = Field(
        pattern=r"^[0-9a-f]{32}$",
        description="The stored item's id: its files are <id>.png and <id>.json.",
        examples=["3f2a9c0e5b7d4e6f8a1b2c3d4e5f6a7b"],
    )
