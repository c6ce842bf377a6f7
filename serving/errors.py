"""TF Serving's error model: a status code and message, answered as `{"error": message}`."""

# absl::StatusCode -> HTTP status, as tensorflow_serving/model_servers/http_server.cc maps them.
HTTP_STATUS = {
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}


class ServingError(Exception):
    """A failed request, carrying the absl status code TF Serving would have used."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)


def invalid_argument(*parts: object) -> ServingError:
    return ServingError("INVALID_ARGUMENT", "".join(str(part) for part in parts))


def not_found(*parts: object) -> ServingError:
    return ServingError("NOT_FOUND", "".join(str(part) for part in parts))
