"""Domain errors raised by the gateway. Each class carries its HTTP status and a metrics
`kind`, and each error the sentence the caller reads; main.py's one handler answers with
them, and /predict/batch puts them in a file's own entry."""


class GatewayError(Exception):
    """Base class: `status_code` is the HTTP status, the message is the user-facing detail.
    Subclasses name both in their class line: `class X(GatewayError, status_code=400, kind=...)`."""

    status_code = 500
    kind = "internal"

    def __init_subclass__(cls, *, status_code: int, kind: str) -> None:
        cls.status_code, cls.kind = status_code, kind

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidImage(GatewayError, status_code=400, kind="invalid_image"):
    """The upload is not a readable image (empty, truncated, corrupt, not an image)."""


class MalformedRequest(GatewayError, status_code=400, kind="malformed_request"):
    """The body does not parse as what its Content-Type says (broken multipart)."""


class PayloadTooLarge(GatewayError, status_code=413, kind="too_large"):
    """The upload has too many bytes or its image too many pixels."""


class UnsupportedImageType(GatewayError, status_code=415, kind="unsupported_type"):
    """A readable file in a format the gateway does not accept (SVG, PDF, ...)."""


class NoDigitFound(GatewayError, status_code=422, kind="no_digit"):
    """The image decodes but holds nothing that looks like a digit."""


class BadRequestParameters(GatewayError, status_code=422, kind="bad_parameters"):
    """Parameters such as a pinned version or batch size are invalid."""


class FeatureDisabled(GatewayError, status_code=404, kind="disabled"):
    """The endpoint is off in this gateway's configuration."""


class Unauthorized(GatewayError, status_code=401, kind="unauthorized"):
    """An API key is required and was missing or wrong."""


class UpstreamError(GatewayError, status_code=502, kind="upstream_error"):
    """TF Serving answered with an error."""


class UpstreamUnavailable(GatewayError, status_code=503, kind="upstream_unavailable"):
    """TF Serving is unreachable or the model is not available."""


class UpstreamTimeout(GatewayError, status_code=504, kind="upstream_timeout"):
    """TF Serving did not answer within the configured timeout."""


class StorageUnavailable(GatewayError, status_code=503, kind="storage_unavailable"):
    """The gateway could not write to its own storage (the feedback folder)."""


class FeedbackStoreFull(GatewayError, status_code=507, kind="feedback_full"):
    """The feedback folder holds its configured number of corrections."""
