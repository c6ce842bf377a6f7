"""TF Serving's JSON tensor encoding: request bodies to numpy, outputs to JSON.

Mirrors tensorflow_serving/util/json_tensor.cc, including its error messages. Valid
numeric bodies take a fast path through numpy; anything numpy rejects is walked again
the way TF Serving walks it, to name the first offending value.
"""

import base64
import binascii
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from serving.errors import ServingError, invalid_argument

INSTANCES = "instances"
INPUTS = "inputs"
SIGNATURE_NAME = "signature_name"
DEFAULT_SIGNATURE = "serving_default"

# TF DataType names as DataTypeString() prints them, with the numpy dtype to build.
DTYPES: dict[str, tuple[str, np.dtype[Any]]] = {
    "float32": ("float", np.dtype(np.float32)),
    "float64": ("double", np.dtype(np.float64)),
    "int32": ("int32", np.dtype(np.int32)),
    "int64": ("int64", np.dtype(np.int64)),
    "uint8": ("uint8", np.dtype(np.uint8)),
    "string": ("string", np.dtype(object)),
}

InputSpecs = dict[str, str]  # input name -> TF dtype name ("float32", "string", ...)


@dataclass(frozen=True)
class PredictRequest:
    signature_name: str
    inputs: dict[str, np.ndarray]
    row_format: bool


def debug_string(value: object) -> str:
    """Compact JSON, as rapidjson's Writer prints a value in error messages."""
    return orjson.dumps(value).decode()


def _json_type(value: object) -> str:
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def _type_error(value: object, dtype: str) -> ServingError:
    return invalid_argument(
        "JSON Value: ",
        debug_string(value),
        " Type: ",
        _json_type(value),
        " is not of expected type: ",
        DTYPES[dtype][0],
    )


def _is_b64(value: object) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _scalar(value: object, dtype: str) -> object:
    if dtype == "string":
        if isinstance(value, str):
            return value.encode()
        if isinstance(value, dict):
            if not _is_b64(value):
                raise invalid_argument(
                    "JSON Value: ", debug_string(value), " not formatted correctly for base64 data"
                )
            try:
                return base64.b64decode(value["b64"], validate=True)
            except (binascii.Error, ValueError):
                raise invalid_argument("Unable to base64 decode") from None
        raise _type_error(value, dtype)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _type_error(value, dtype)
    if dtype.startswith(("int", "uint")) and not isinstance(value, int):
        raise _type_error(value, dtype)
    return value


def _dense_shape(value: object) -> list[int]:
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _fill(value: object, level: int, shape: list[int], dtype: str, out: list[object]) -> None:
    if not isinstance(value, list):
        if level != len(shape):
            raise invalid_argument(
                "JSON Value: ",
                debug_string(value),
                " found at incorrect level: ",
                level + 1,
                " in the JSON DOM. Expected at level: ",
                len(shape),
            )
        out.append(_scalar(value, dtype))
        return
    if level >= len(shape):
        raise invalid_argument(
            "Encountered list at unexpected level: ", level, " expected < ", len(shape)
        )
    if len(value) != shape[level]:
        raise invalid_argument(
            "Encountered list at unexpected size: ",
            len(value),
            " at level: ",
            level,
            " expected size: ",
            shape[level],
        )
    for item in value:
        _fill(item, level + 1, shape, dtype, out)


def _fast_array(value: object, dtype: str) -> np.ndarray | None:
    """Plain rectangular numeric lists as an array; None when the slow walk must decide.

    Flattening level by level and building from the flat list is several times faster
    than numpy's discovery of nested lists; a count that does not add up, or a value that
    is not a number, sends the request down the slow walk for TF Serving's exact error.
    """
    if dtype == "string":
        return None
    shape = _dense_shape(value)
    flat: Any = value if shape else [value]
    try:
        for _ in range(len(shape) - 1):
            flat = list(itertools.chain.from_iterable(flat))
    except TypeError:
        return None
    if len(flat) != math.prod(shape) or (flat and isinstance(flat[0], list)):
        return None
    try:
        array = np.array(flat)
    except ValueError:
        return None
    allowed = "iu" if dtype.startswith(("int", "uint")) else "iuf"
    if array.dtype.kind not in allowed:
        return None
    return array.astype(DTYPES[dtype][1], copy=False).reshape(shape)


def tensor_from_json(value: object, dtype: str) -> np.ndarray:
    """One JSON value (scalar or nested lists) as an array, or TF Serving's error."""
    fast = _fast_array(value, dtype)
    if fast is not None:
        return fast
    shape = _dense_shape(value)
    flat: list[object] = []
    _fill(value, 0, shape, dtype, flat)
    array = np.empty(len(flat), dtype=DTYPES[dtype][1])
    array[:] = flat
    return array.reshape(shape)


def _status_string(error: ServingError) -> str:
    return f"{error.code}: {error.message}"


def _instances_to_tensors(instances: list[Any], specs: InputSpecs) -> dict[str, np.ndarray]:
    def is_object(value: object) -> bool:
        return isinstance(value, dict) and not _is_b64(value)

    if not isinstance(instances[0], dict) and len(specs) > 1:
        raise invalid_argument(
            "instances is a plain list, but expecting list of objects as multiple "
            "input tensors required as per tensorinfo_map"
        )
    if not is_object(instances[0]):
        ((name, dtype),) = specs.items()
        if not any(is_object(item) for item in instances):
            fast = _fast_array(instances, dtype)
            if fast is not None and fast.ndim >= 1:
                return {name: fast}
        columns: dict[str, list[np.ndarray]] = {name: []}
        for index, item in enumerate(instances):
            if is_object(item):
                raise invalid_argument(
                    "Expecting value/list but got object at item ", index, " of input list"
                )
            try:
                columns[name].append(tensor_from_json(item, dtype))
                _check_same_shape(columns[name])
            except ServingError as exc:
                raise invalid_argument(
                    "Failed to process element: ",
                    index,
                    " of 'instances' list. Error: ",
                    _status_string(exc),
                ) from None
        return {name: np.stack(columns[name]) for name in columns}

    columns = {name: [] for name in specs}
    for index, item in enumerate(instances):
        if not is_object(item):
            raise invalid_argument(
                "Expecting object but got list at item ", index, " of input list"
            )
        for key, value in item.items():
            if key not in specs:
                raise invalid_argument(
                    "Failed to process element: ",
                    index,
                    " key: ",
                    key,
                    " of 'instances' list. Error: INVALID_ARGUMENT: JSON object: does not have"
                    " named input: ",
                    key,
                )
            try:
                columns[key].append(tensor_from_json(value, specs[key]))
                _check_same_shape(columns[key])
            except ServingError as exc:
                raise invalid_argument(
                    "Failed to process element: ",
                    index,
                    " key: ",
                    key,
                    " of 'instances' list. Error: ",
                    _status_string(exc),
                ) from None
        if set(item) != set(specs):
            raise invalid_argument(
                "Failed to process element: ",
                index,
                " of 'instances' list. JSON object: ",
                debug_string(item),
                " keys must be equal to: ",
                ",".join(sorted(specs)),
            )
    return {name: np.stack(values) for name, values in columns.items()}


def _check_same_shape(arrays: list[np.ndarray]) -> None:
    first, last = arrays[0], arrays[-1]
    if first.size != last.size:
        raise invalid_argument("Expecting tensor size: ", first.size, " but got: ", last.size)
    if first.shape != last.shape:
        raise invalid_argument(
            "Expecting shape ",
            _shape_string(first.shape),
            " but got: ",
            _shape_string(last.shape),
        )


def _shape_string(shape: tuple[int, ...]) -> str:
    return "[" + ",".join(str(dim) for dim in shape) + "]"


def _inputs_to_tensors(value: Any, specs: InputSpecs) -> dict[str, np.ndarray]:
    if not isinstance(value, dict) or _is_b64(value):
        if len(specs) > 1:
            raise invalid_argument(
                "inputs is a plain value/list, but expecting an object as multiple "
                "input tensors required as per tensorinfo_map"
            )
        ((name, dtype),) = specs.items()
        return {name: tensor_from_json(value, dtype)}
    tensors = {}
    for name, dtype in specs.items():
        if name not in value:
            raise invalid_argument("Missing named input: ", name, " in 'inputs' object.")
        tensors[name] = tensor_from_json(value[name], dtype)
    return tensors


def parse_predict_request(body: bytes, input_specs: Callable[[str], InputSpecs]) -> PredictRequest:
    """Parse a :predict body. `input_specs(signature_name)` raises if the signature is unknown."""
    if not body:
        raise invalid_argument("JSON Parse error: The document is empty")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise invalid_argument("JSON Parse error: ", exc.msg, " at offset: ", exc.pos) from None
    if not isinstance(document, dict):
        raise invalid_argument("JSON Value: ", debug_string(document), " Is not object")
    signature = document.get(SIGNATURE_NAME, DEFAULT_SIGNATURE)
    if not isinstance(signature, str):
        raise invalid_argument(
            "JSON Value: ",
            debug_string(document),
            " not formatted correctly. 'signature_name' key must be a string value.",
        )
    signature = signature or DEFAULT_SIGNATURE
    specs = input_specs(signature)
    if not specs:
        raise invalid_argument("Failed to get input map for signature: ", signature)
    if INSTANCES in document and INPUTS in document:
        raise invalid_argument(
            "JSON Value: ",
            debug_string(document),
            " Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist ",
        )
    if INSTANCES in document:
        instances = document[INSTANCES]
        if not isinstance(instances, list):
            raise invalid_argument(
                "JSON Value: ", debug_string(document), " Expecting 'instances' to be an list/array"
            )
        if not instances:
            raise invalid_argument(
                "JSON Value: ", debug_string(document), " No values in 'instances' array"
            )
        return PredictRequest(signature, _instances_to_tensors(instances, specs), row_format=True)
    if INPUTS in document:
        return PredictRequest(signature, _inputs_to_tensors(document[INPUTS], specs), False)
    raise invalid_argument("Missing 'inputs' or 'instances' key")


def _jsonable(name: str, value: np.ndarray) -> Any:
    if value.dtype != object:
        return value
    # TF Serving base64-encodes string outputs whose name ends in "_bytes".
    if name.endswith("_bytes"):
        return np.vectorize(lambda b: {"b64": base64.b64encode(b).decode()}, otypes=[object])(
            value
        ).tolist()
    return np.vectorize(lambda b: b.decode("utf-8", "replace"), otypes=[object])(value).tolist()


def encode_predict_response(outputs: dict[str, np.ndarray], row_format: bool) -> bytes:
    """Outputs as `{"predictions": ...}` (row format) or `{"outputs": ...}` (columnar)."""
    if not outputs:
        raise invalid_argument("Cannot convert empty tensor map to JSON")
    option = orjson.OPT_SERIALIZE_NUMPY
    if not row_format:
        if len(outputs) == 1:
            ((name, value),) = outputs.items()
            return orjson.dumps({"outputs": _jsonable(name, value)}, option=option)
        return orjson.dumps(
            {"outputs": {name: _jsonable(name, value) for name, value in outputs.items()}},
            option=option,
        )
    sizes = set()
    for name, value in outputs.items():
        if value.ndim == 0:
            raise invalid_argument("Tensor name: ", name, " has no shape information ")
        sizes.add(value.shape[0])
    if len(sizes) > 1:
        raise invalid_argument("Tensor name has inconsistent batch size: ", sorted(sizes))
    if len(outputs) == 1:
        ((name, value),) = outputs.items()
        return orjson.dumps({"predictions": _jsonable(name, value)}, option=option)
    columns = {name: _jsonable(name, value) for name, value in outputs.items()}
    rows = [
        {name: column[index] for name, column in columns.items()} for index in range(sizes.pop())
    ]
    return orjson.dumps({"predictions": rows}, option=option)
