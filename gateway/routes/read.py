"""POST /read: an upload of a number -> its digits (gateway/reading.py) -> one call to the
model server with every candidate digit -> the number, left to right."""

import io
import math
from functools import partial

import numpy as np
from fastapi import Request, Response
from PIL import Image

from gateway.deps import keyed_router
from gateway.parameters import PIN_PARAMETERS, upload_route
from gateway.preprocessing import decode_digit_image
from gateway.reading import READ_WORK_SIZE, Candidates, best_reading, read_candidates
from gateway.routes.predict import (
    ERROR_RESPONSES,
    PredictParameters,
    count_digit,
    json_response,
    preprocessed,
)
from gateway.schemas import ReadForm, ReadResponse
from gateway.uploads import read_form

router = keyed_router("read")


def _candidates(data: bytes, max_pixels: int, most: int) -> Candidates:
    image = decode_digit_image(data, max_pixels, READ_WORK_SIZE)
    # A JPEG decodes at a fraction of its size: the boxes are in the upload's pixels.
    uploaded = Image.open(io.BytesIO(data)).size
    return read_candidates(image, most, upload_scale=max(uploaded) / max(image.size))


@router.post(
    "/read",
    responses={200: {"model": ReadResponse}, **ERROR_RESPONSES},
    openapi_extra=upload_route(ReadForm, *PIN_PARAMETERS),
)
async def read(request: Request) -> Response:
    """Read a number: up to 20 digits in one row, left to right, in one call to the model."""
    asked = PredictParameters.of(request)
    upload = (await read_form(request, ReadForm)).file
    # Every candidate goes in one call: no more than the model server takes in one.
    most = asked.services.settings.max_batch
    candidates = await preprocessed(upload, asked.services, partial(_candidates, most=most))
    result = await asked.services.classifier.classify(
        candidates.images, asked.pin, asked.request_id
    )
    outputs = result.outputs
    chosen = best_reading(candidates, np.array([output.confidence for output in outputs]))
    version = str(result.model_version)
    digits = []
    for index in chosen:
        output = outputs[index]
        count_digit(output, asked.services, version)
        box = [int(value) for value in candidates.boxes[index]]
        digits.append({"digit": output.digit, "confidence": output.confidence, "box": box})
    return json_response(
        {
            "number": "".join(str(digit["digit"]) for digit in digits),
            "digits": digits,
            "confidence": math.prod(outputs[index].confidence for index in chosen),
            "model_version": version,
        }
    )
