"""TF Serving's JSON tensor encoding: request bodies to numpy, outputs to JSON.

Follows tensorflow_serving/util/json_tensor.cc: what it accepts, what it refuses and why
(its error messages, reworded only where they quote the request). Valid numeric bodies
take a fast path through numpy; anything numpy rejects is walked again the way TF Serving
walks it, to name the first offending value.
"""

import base64
import binascii
import itertools
import json
import math
import re
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


INT32_RANGE = (-(2**31), 2**31 - 1)
INT64_RANGE = (-(2**63), 2**63 - 1)
_INT_RANGES = {"int32": INT32_RANGE, "uint8": INT32_RANGE, "int64": INT64_RANGE}

# rapidjson (kParseNanAndInfFlag) reads NaN, Inf and Infinity, signed or not; Python's json
# reads NaN, Infinity and -Infinity. Strings are matched too, so tokens inside them stay.
_NON_FINITE = re.compile(r'"(?:[^"\\]|\\.)*"|(-?)(Infinity|Inf|NaN)')


def parse_json(body: bytes) -> Any:
    """A request body as TF Serving's rapidjson reads it (json_tensor.cc, ParseJson).

    orjson reads every ordinary body. Only when it refuses one is the body read again
    the way rapidjson's flags allow: NaN and Infinity literals (kParseNanAndInfFlag) and
    anything after the first complete value ignored (kParseStopWhenDoneFlag).
    """
    if not body:
        raise invalid_argument("JSON Parse error: The document is empty")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        try:
            return _parse_leniently(body)
        except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError too
            raise invalid_argument("JSON Parse error: ", exc.msg, " at offset: ", exc.pos) from None


def _parse_leniently(body: bytes) -> Any:
    def canonical(match: re.Match[str]) -> str:
        sign, token = match.groups()
        if token is None:
            return match.group()
        return "NaN" if token == "NaN" else sign + "Infinity"

    text = _NON_FINITE.sub(canonical, body.decode("utf-8"))
    start = len(text) - len(text.lstrip(" \t\n\r"))  # JSON's whitespace
    value, _end = json.JSONDecoder().raw_decode(text, start)
    return value


def debug_string(value: object) -> str:
    """A JSON value as error messages quote it: at most 256 characters, as TF Serving's."""
    return json.dumps(value)[:256]


_JSON_TYPES = {type(None): "Null", bool: "Boolean", dict: "Object", list: "Array", str: "String"}


def _type_error(value: object, dtype: str) -> ServingError:
    return invalid_argument(
        "JSON Value: ",
        debug_string(value),
        " Type: ",
        _JSON_TYPES.get(type(value), "Number"),
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
                # base64.b64decode(validate=True), without its Python wrapper
                return binascii.a2b_base64(value["b64"], strict_mode=True)
            except (binascii.Error, ValueError):
                raise invalid_argument("Unable to base64 decode") from None
        raise _type_error(value, dtype)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _type_error(value, dtype)
    bounds = _INT_RANGES.get(dtype)
    if bounds is not None and not (isinstance(value, int) and bounds[0] <= value <= bounds[1]):
        raise _type_error(value, dtype)  # rapidjson's IsInt() / IsInt64()
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
    except (ValueError, OverflowError):
        return None
    bounds = _INT_RANGES.get(dtype)
    if bounds is None:
        if array.dtype.kind not in "iuf":
            return None
    elif array.dtype.kind != "i" or (
        array.size and (array.min() < bounds[0] or array.max() > bounds[1])
    ):
        return None  # out of range or not integers: the slow walk names the value
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


def _element_error(index: int, key: str | None, error: ServingError) -> ServingError:
    """An instance's error, placed in the request as TF Serving places it."""
    where = "" if key is None else f" key: {key}"
    return invalid_argument(
        f"Failed to process element: {index}{where} of 'instances' list. "
        f"Error: {error.code}: {error.message}"
    )


def _is_object(value: object) -> bool:
    return isinstance(value, dict) and not _is_b64(value)


def _instances_to_tensors(instances: list[Any], specs: InputSpecs) -> dict[str, np.ndarray]:
    if not isinstance(instances[0], dict) and len(specs) > 1:
        raise invalid_argument(
            "instances is a plain list, but expecting list of objects as multiple "
            "input tensors required as per tensorinfo_map"
        )
    if not _is_object(instances[0]):
        ((name, dtype),) = specs.items()
        return {name: _plain_instances(instances, dtype)}
    return _object_instances(instances, specs)


def _plain_instances(instances: list[Any], dtype: str) -> np.ndarray:
    """The one input's tensor from a list of values (the row format without names)."""
    if not any(_is_object(item) for item in instances):
        fast = _fast_array(instances, dtype)
        if fast is not None and fast.ndim >= 1:
            return fast
    rows: list[np.ndarray] = []
    for index, item in enumerate(instances):
        if _is_object(item):
            raise invalid_argument(
                "Expecting value/list but got object at item ", index, " of input list"
            )
        try:
            rows.append(tensor_from_json(item, dtype))
            _check_same_shape(rows)
        except ServingError as exc:
            raise _element_error(index, None, exc) from None
    return np.stack(rows)


def _object_instances(instances: list[Any], specs: InputSpecs) -> dict[str, np.ndarray]:
    """Each named input's tensor from a list of objects (the row format with names)."""
    columns: dict[str, list[np.ndarray]] = {name: [] for name in specs}
    for index, item in enumerate(instances):
        if not _is_object(item):
            raise invalid_argument(
                "Expecting object but got list at item ", index, " of input list"
            )
        for key, value in item.items():
            try:
                if key not in specs:
                    raise invalid_argument("JSON object: does not have named input: ", key)
                columns[key].append(tensor_from_json(value, specs[key]))
                _check_same_shape(columns[key])
            except ServingError as exc:
                raise _element_error(index, key, exc) from None
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
            "Expecting shape ", list(first.shape), " but got: ", list(last.shape)
        )


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
    """Parse a :predict body. `input_specs(signature_name)` raises if the model or the
    signature is unknown; TF Serving asks only once the body has parsed."""
    document = parse_json(body)
    if not isinstance(document, dict):
        raise invalid_argument("JSON Value: ", debug_string(document), " Is not object")
    requested = document.get(SIGNATURE_NAME, "")  # "" when absent, as FillSignature reads it
    if not isinstance(requested, str):
        raise invalid_argument(
            "JSON Value: ",
            debug_string(document),
            " not formatted correctly. 'signature_name' key must be a string value.",
        )
    signature = requested or DEFAULT_SIGNATURE
    specs = input_specs(signature)
    if not specs:
        raise invalid_argument("Failed to get input map for signature: ", requested or "DEFAULT")
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
    """An output as orjson writes it: numbers stay numpy, strings become text."""
    if value.dtype != object:
        return value
    # TF Serving base64-encodes string outputs whose name ends in "_bytes".
    if name.endswith("_bytes"):
        return np.vectorize(lambda b: {"b64": base64.b64encode(b).decode()}, otypes=[object])(
            value
        ).tolist()
    return np.vectorize(lambda b: b.decode("utf-8", "replace"), otypes=[object])(value).tolist()


def encode_predict_response(outputs: dict[str, np.ndarray], row_format: bool) -> bytes:
    """Outputs as `{"predictions": ...}` (row format) or `{"outputs": ...}` (columnar).

    orjson writes each float32 in the fewest digits that read back as the same float32;
    NaN and infinities become null.
    """
    if not outputs:
        raise invalid_argument("Cannot convert empty tensor map to JSON")
    option = orjson.OPT_SERIALIZE_NUMPY
    columns = {name: _jsonable(name, value) for name, value in outputs.items()}
    if not row_format:
        whole = next(iter(columns.values())) if len(columns) == 1 else columns
        return orjson.dumps({"outputs": whole}, option=option)
    batch_size = -1
    for name, value in outputs.items():
        if value.ndim == 0:
            raise invalid_argument("Tensor name: ", name, " has no shape information ")
        if batch_size >= 0 and value.shape[0] != batch_size:
            raise invalid_argument(
                "Tensor name: ",
                name,
                " has inconsistent batch size: ",
                value.shape[0],
                " expecting: ",
                batch_size,
            )
        batch_size = value.shape[0]
    if len(columns) == 1:
        return orjson.dumps({"predictions": next(iter(columns.values()))}, option=option)
    rows = [{name: column[row] for name, column in columns.items()} for row in range(batch_size)]
    return orjson.dumps({"predictions": rows}, option=option)
