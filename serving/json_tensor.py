"""TF Serving's JSON tensor encoding: request bodies to numpy, outputs to JSON.

Mirrors tensorflow_serving/util/json_tensor.cc, including its error messages. Valid
numeric bodies take a fast path through numpy; anything numpy rejects is walked again
the way TF Serving walks it, to name the first offending value.
"""

import base64
import binascii
import itertools
import json
import math
import re
import struct
from collections.abc import Callable, Sequence
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
_JSON_WHITESPACE = " \t\n\r"


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
    start = len(text) - len(text.lstrip(_JSON_WHITESPACE))
    value, _end = json.JSONDecoder().raw_decode(text, start)
    return value


class _Stop(Exception):
    """The debug writer refused a value or reached its size limit."""


DEBUG_STRING_LIMIT = 256  # kMaxJsonDebugStringBytes
_STRING_ESCAPES = {code: f"\\u{code:04X}" for code in range(0x20)} | {
    0x08: "\\b",
    0x09: "\\t",
    0x0A: "\\n",
    0x0C: "\\f",
    0x0D: "\\r",
    0x22: '\\"',
    0x5C: "\\\\",
}


def debug_string(value: object) -> str:
    """A JSON value as TF Serving quotes it in error messages (JsonValueToDebugString).

    That is rapidjson's PrettyWriter with one-line arrays, cut short once 256 bytes are
    out, and stopped at NaN or Infinity, which the writer refuses to print.
    """
    writer = _DebugWriter()
    try:
        writer.write(value)
    except _Stop:
        pass
    return "".join(writer.parts)


class _DebugWriter:
    """rapidjson's PrettyWriter (kFormatSingleLineArray) behind TF Serving's size limit."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.levels: list[list[int]] = []  # [is array, values written] per open container

    def write(self, value: object) -> None:
        if isinstance(value, dict):
            self._begin_value("{")
            self.levels.append([0, 0])
            for key, item in value.items():
                self._begin_value(_quote(key))
                self.write(item)
            self._end("}")
        elif isinstance(value, list):
            self._begin_value("[")
            self.levels.append([1, 0])
            for item in value:
                self.write(item)
            self._end("]")
        else:
            self._begin_value(None)
            self._put(_scalar_text(value))

    def _put(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text.encode())

    def _begin_value(self, token: str | None) -> None:
        if self.size >= DEBUG_STRING_LIMIT:
            raise _Stop
        if self.levels:
            level = self.levels[-1]
            if level[0]:
                if level[1]:
                    self._put(", ")
            else:
                self._put("\n" if not level[1] else ",\n" if level[1] % 2 == 0 else ": ")
                if level[1] % 2 == 0:
                    self._put(" " * 4 * len(self.levels))
            level[1] += 1
        if token is not None:
            self._put(token)

    def _end(self, token: str) -> None:
        if self.size >= DEBUG_STRING_LIMIT:
            raise _Stop
        is_array, count = self.levels.pop()
        if count and not is_array:
            self._put("\n" + " " * 4 * len(self.levels))
        self._put(token)


def _quote(text: str) -> str:
    return '"' + text.translate(_STRING_ESCAPES) + '"'


def _scalar_text(value: object) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, int) and INT64_RANGE[0] <= value < 2**64:
        return str(value)
    try:
        number = float(value)  # type: ignore[arg-type]
    except (OverflowError, TypeError, ValueError):
        raise _Stop from None
    if not math.isfinite(number):
        raise _Stop  # PrettyWriter::Double refuses NaN and Infinity without kWriteNanAndInfFlag
    return _rapidjson_double(number)


def _rapidjson_double(number: float) -> str:
    """A double as rapidjson's dtoa writes it: shortest digits, Prettify's layout."""
    if number == 0:
        return "-0.0" if math.copysign(1.0, number) < 0 else "0.0"
    sign = "-" if number < 0 else ""
    mantissa, _, exponent = repr(abs(number)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    k = int(exponent or 0) - len(fraction)
    significant = digits.rstrip("0")
    k += len(digits) - len(significant)
    digits, length = significant, len(significant)
    kk = length + k  # 10^(kk-1) <= number < 10^kk
    if 0 <= k and kk <= 21:
        return f"{sign}{digits}{'0' * k}.0"
    if 0 < kk <= 21:
        return f"{sign}{digits[:kk]}.{digits[kk:]}"
    if -6 < kk <= 0:
        return f"{sign}0.{'0' * -kk}{digits}"
    if length == 1:
        return f"{sign}{digits}e{kk - 1}"
    return f"{sign}{digits[0]}.{digits[1:]}e{kk - 1}"


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


def _fast_strings(items: list[Any]) -> np.ndarray | None:
    """A list of {"b64": ...} objects and strings as a 1-D array of bytes; None when the
    slow walk must decide (another value, or base64 that does not decode)."""
    values: list[bytes] = []
    append = values.append
    a2b = binascii.a2b_base64
    try:
        for item in items:
            if type(item) is dict:
                if len(item) != 1:
                    return None
                encoded = item.get("b64")
                if type(encoded) is not str:
                    return None
                append(a2b(encoded, strict_mode=True))
            elif type(item) is str:
                append(item.encode())
            else:
                return None
    except (binascii.Error, ValueError):
        return None
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def tensor_from_json(value: object, dtype: str) -> np.ndarray:
    """One JSON value (scalar or nested lists) as an array, or TF Serving's error."""
    if dtype == "string" and type(value) is list and value and type(value[0]) is not list:
        fast = _fast_strings(value)
    else:
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
    if dtype == "string":  # {"b64": ...} objects are values, not objects
        fast = _fast_strings(instances)
        if fast is not None:
            return fast
    elif not any(_is_object(item) for item in instances):
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
            raise invalid_argument(
                "Failed to process element: ",
                index,
                " of 'instances' list. Error: ",
                _status_string(exc),
            ) from None
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


def _signature_name(document: dict[str, Any]) -> str:
    """The request's signature_name as given ("" when absent), as FillSignature reads it."""
    signature = document.get(SIGNATURE_NAME, "")
    if not isinstance(signature, str):
        raise invalid_argument(
            "JSON Value: ",
            debug_string(document),
            " not formatted correctly. 'signature_name' key must be a string value.",
        )
    return signature


def _parse_document(body: bytes) -> dict[str, Any]:
    document = parse_json(body)
    if not isinstance(document, dict):
        raise invalid_argument("JSON Value: ", debug_string(document), " Is not object")
    return document


def parse_predict_request(body: bytes, input_specs: Callable[[str], InputSpecs]) -> PredictRequest:
    """Parse a :predict body. `input_specs(signature_name)` raises if the model or the
    signature is unknown; TF Serving asks only once the body has parsed."""
    document = _parse_document(body)
    requested = _signature_name(document)
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


EXAMPLES = "examples"
CONTEXT = "context"


def parse_classify_regress_request(body: bytes) -> str:
    """Check a :classify or :regress body as FillClassifyRegressRequestFromJson does.

    Returns the requested signature name ("" when absent). The tf.Example features are
    only checked, not built: the local server never runs these APIs.
    """
    document = _parse_document(body)
    signature = _signature_name(document)
    if CONTEXT in document:
        _check_example(document[CONTEXT])
    if EXAMPLES not in document:
        raise invalid_argument(
            "JSON Value: ",
            debug_string(document),
            " When method is classify, key 'examples' is expected and was not found",
        )
    examples = document[EXAMPLES]
    if not isinstance(examples, list):
        raise invalid_argument(
            "JSON Value: ",
            debug_string(document),
            " Expecting 'examples' value to be an list/array",
        )
    if not examples:
        raise invalid_argument(
            "JSON Value: ", debug_string(document), " 'examples' value is an empty array"
        )
    for example in examples:
        _check_example(example)
    return signature


def _check_example(value: object) -> None:
    """MakeExampleFromJsonObject: each feature is a list of one kind of value."""
    if not isinstance(value, dict):
        raise invalid_argument("Example must be JSON object but got JSON ", _json_type(value))
    for name, content in value.items():
        kind: str | None = None
        for item in content if isinstance(content, list) else [content]:
            kind = _feature_kind(name, item, kind)


def _feature_kind(name: str, value: object, kind: str | None) -> str:
    """The tf.train.Feature kind `value` belongs to, as AddValueToFeature decides it."""
    if value is None or isinstance(value, list) or (isinstance(value, dict) and not _is_b64(value)):
        raise invalid_argument(
            "Feature: ", name, " has element with unexpected JSON type: ", _json_type(value)
        )
    if isinstance(value, bool):
        wanted = "int64"
    elif isinstance(value, dict | str):
        wanted = "bytes"
    elif isinstance(value, float) or not INT64_RANGE[0] <= value < 2**64:  # type: ignore[operator]
        wanted = "float"  # rapidjson holds fractions and integers beyond 64 bits as doubles
    else:
        wanted = "int64"
    if kind is not None and kind != wanted:
        raise invalid_argument(
            "Unexpected element type in feature: ", name, " expecting type: ", kind
        )
    if isinstance(value, dict):
        _scalar(value, "string")  # the base64 must decode
    elif isinstance(value, int) and value > INT64_RANGE[1]:
        raise invalid_argument(
            "Feature: ", name, " has uint64_t element. Only int64_t is supported."
        )
    return wanted


def _jsonable(name: str, value: np.ndarray) -> Any:
    if value.dtype != object:
        return value
    # TF Serving base64-encodes string outputs whose name ends in "_bytes".
    if name.endswith("_bytes"):
        return np.vectorize(lambda b: {"b64": base64.b64encode(b).decode()}, otypes=[object])(
            value
        ).tolist()
    return np.vectorize(lambda b: b.decode("utf-8", "replace"), otypes=[object])(value).tolist()


def float32_texts(values: np.ndarray) -> list[str]:
    """Each float32 as TF Serving writes it (json_tensor.cc, WriteDecimal).

    That is printf's %g with six significant digits when they read back as the same
    float, else with nine; ".0" after whole numbers; NaN, Infinity and -Infinity bare.
    A few values (one prediction) are formatted in one printf; batches go through numpy.
    """
    flat = values.ravel()
    if flat.size >= VECTORISED_FROM:
        return _float32_texts_vectorised(flat)
    return _few_float32_texts(flat.tolist())


def _few_float32_texts(numbers: list[float]) -> list[str]:
    """float32_texts for fewer than VECTORISED_FROM values, given as Python floats.

    One printf per precision formats them all, and one struct round trip to float32 tells
    which six-digit texts read back (few do: most float32 values need nine digits).
    """
    count = len(numbers)
    if not count:
        return []
    values = tuple(numbers)
    six = (_SIX_DIGITS[count] % values).split(",")
    nine = (_NINE_DIGITS[count] % values).split(",")
    as_float32 = _FLOAT32_STRUCTS[count]
    read_back = as_float32.unpack(as_float32.pack(*map(float, six)))
    texts = []
    for short, long, back, number in zip(six, nine, read_back, numbers, strict=True):
        text = short if back == number else long
        texts.append(text if "." in text or "e" in text else text + ".0")
    if not math.isfinite(sum(numbers)):  # float32 values cannot add up to infinity
        for index, number in enumerate(numbers):
            if not math.isfinite(number):
                texts[index] = _non_finite_text(number)
    return texts


VECTORISED_FROM = 64  # values; below this numpy's per-call cost outweighs its speed
_SIX_DIGITS = [",".join(["%.6g"] * count) for count in range(VECTORISED_FROM)]
_NINE_DIGITS = [",".join(["%.9g"] * count) for count in range(VECTORISED_FROM)]
_FLOAT32_STRUCTS = [struct.Struct(f"{count}f") for count in range(VECTORISED_FROM)]
# printf formats per float32, indexed by: 1 if six digits read back, +2 if it prints whole.
_FLOAT32_FORMATS = np.array(
    ["%.9g", "%.6g", "%.9g.0", "%.6g.0", "NaN", "Infinity", "-Infinity"], dtype=object
)


def _float32_texts_vectorised(flat: np.ndarray) -> list[str]:
    """float32_texts for many values: numpy picks each value's format, one printf formats."""
    exact = flat.astype(np.float64)
    finite = np.isfinite(exact)
    with np.errstate(all="ignore"):
        magnitude = np.abs(exact)
        exponent = np.floor(np.log10(np.where(finite & (magnitude > 0), magnitude, 1.0)))
        # Scale by whole powers of ten, which are exact where these values need them.
        small = exponent <= 5
        power = 10.0 ** np.where(small, 5 - exponent, exponent - 5)
        six = np.where(small, np.rint(exact * power) / power, np.rint(exact / power) * power)
        six_read_back = six.astype(np.float32) == flat
    whole = (exact == np.trunc(exact)) & (magnitude < np.where(six_read_back, 1e6, 1e9))
    choice = six_read_back + 2 * whole
    if finite.all():
        numbers = flat.tolist()
    else:
        choice[np.isnan(exact)] = 4
        choice[exact == np.inf] = 5
        choice[exact == -np.inf] = 6
        numbers = flat[finite].tolist()
    template = ",".join(_FLOAT32_FORMATS[choice].tolist())
    return str(template % tuple(numbers)).split(",")


def _non_finite_text(number: float) -> str:
    if math.isnan(number):
        return "NaN"
    return "Infinity" if number > 0 else "-Infinity"


def float64_text(number: float) -> str:
    """A double as TF Serving writes it: like float32_texts, with 17 digits as the fallback."""
    if not math.isfinite(number):
        return _non_finite_text(number)
    text = f"{number:.6g}"
    if float(text) != number:
        text = f"{number:.17g}"
    return text if "." in text or "e" in text else text + ".0"


def _nest(texts: Sequence[str], shape: tuple[int, ...]) -> str:
    """Flat value texts as nested JSON arrays of `shape`."""
    if not shape:
        return texts[0]
    if len(shape) == 1:
        return "[" + ",".join(texts) + "]"
    step = len(texts) // shape[0] if shape[0] else 0
    inner = shape[1:]
    return (
        "["
        + ",".join(_nest(texts[i * step : (i + 1) * step], inner) for i in range(shape[0]))
        + "]"
    )


def _float_texts(value: np.ndarray) -> list[str] | None:
    if value.dtype == np.float32:
        return float32_texts(value)
    if value.dtype == np.float64:
        return [float64_text(number) for number in value.ravel().tolist()]
    return None


def _whole_json(name: str, value: np.ndarray) -> Any:
    texts = _float_texts(value)
    if texts is None:
        return _jsonable(name, value)
    return orjson.Fragment(_nest(texts, value.shape))


def _row_json(name: str, value: np.ndarray) -> Sequence[Any]:
    texts = _float_texts(value)
    if texts is None:
        return _jsonable(name, value)  # type: ignore[no-any-return]
    rows, inner = value.shape[0], value.shape[1:]
    step = math.prod(inner)
    return [orjson.Fragment(_nest(texts[i * step : (i + 1) * step], inner)) for i in range(rows)]


def encode_predict_response(outputs: dict[str, np.ndarray], row_format: bool) -> bytes:
    """Outputs as `{"predictions": ...}` (row format) or `{"outputs": ...}` (columnar)."""
    if not outputs:
        raise invalid_argument("Cannot convert empty tensor map to JSON")
    option = orjson.OPT_SERIALIZE_NUMPY
    if not row_format:
        if len(outputs) == 1:
            ((name, value),) = outputs.items()
            return orjson.dumps({"outputs": _whole_json(name, value)}, option=option)
        return orjson.dumps(
            {"outputs": {name: _whole_json(name, value) for name, value in outputs.items()}},
            option=option,
        )
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
    if len(outputs) == 1:
        ((name, value),) = outputs.items()
        return orjson.dumps({"predictions": _row_json(name, value)}, option=option)
    columns = {name: _row_json(name, value) for name, value in outputs.items()}
    rows = [
        {name: column[index] for name, column in columns.items()} for index in range(batch_size)
    ]
    return orjson.dumps({"predictions": rows}, option=option)
