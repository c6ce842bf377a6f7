"""Domain errors raised by the gateway. Each class carries its HTTP status and a metrics
`kind`, and each error the sentence the caller reads; main.py's one handler answers with
them, and /predict/batch puts them in a file's own entry."""


class GatewayError(Exception):
    """Base class: `status_code` is the HTTP status, the message is the user-facing detail."""

    status_code = 500
    kind = "internal"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidImage(GatewayError):
    """400: the upload is not a readable image (empty, truncated, corrupt, not an image)."""

    status_code = 400
    kind = "invalid_image"


class MalformedRequest(GatewayError):
    """400: the body does not parse as what its Content-Type says (broken multipart)."""

    status_code = 400
    kind = "malformed_request"


class PayloadTooLarge(GatewayError):
    """413: the upload has too many bytes or its image too many pixels."""

    status_code = 413
    kind = "too_large"


class UnsupportedImageType(GatewayError):
    """415: a readable file in a format the gateway does not accept (SVG, PDF, ...)."""

    status_code = 415
    kind = "unsupported_type"


class NoDigitFound(GatewayError):
    """422: the image decodes but holds nothing that looks like a digit."""

    status_code = 422
    kind = "no_digit"


class BadRequestParameters(GatewayError):
    """422: parameters such as a pinned version or batch size are invalid."""

    status_code = 422
    kind = "bad_parameters"


class FeatureDisabled(GatewayError):
    """404: the endpoint is off in this gateway's configuration."""

    status_code = 404
    kind = "disabled"


class Unauthorized(GatewayError):
    """401: an API key is required and was missing or wrong."""

    status_code = 401
    kind = "unauthorized"


class UpstreamError(GatewayError):
    """502: TF Serving answered with an error."""

    status_code = 502
    kind = "upstream_error"


class UpstreamUnavailable(GatewayError):
    """503: TF Serving is unreachable or the model is not available."""

    status_code = 503
    kind = "upstream_unavailable"


class UpstreamTimeout(GatewayError):
    """504: TF Serving did not answer within the configured timeout."""

    status_code = 504
    kind = "upstream_timeout"


class StorageUnavailable(GatewayError):
    """503: the gateway could not write to its own storage (the feedback folder)."""

    status_code = 503
    kind = "storage_unavailable"


class FeedbackStoreFull(GatewayError):
    """507: the feedback folder holds its configured number of corrections."""

    status_code = 507
    kind = "feedback_full"
