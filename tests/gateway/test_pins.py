"""request_pin (gateway/pins.py): which version a request asks for, from its query, its
headers or the gateway's configuration, and which texts are refused."""

import pytest
from starlette.datastructures import Headers, QueryParams

from gateway.errors import BadRequestParameters
from gateway.pins import Pin, request_pin

NEWEST = Pin(None, None)


def pin(query: str = "", headers: dict[str, str] | None = None, configured: Pin = NEWEST) -> Pin:
    # Header bytes as a client sends them (UTF-8); Starlette reads them as latin-1.
    raw = [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]
    return request_pin(QueryParams(query), Headers(raw=raw), configured)


def refused(query: str = "", headers: dict[str, str] | None = None) -> str:
    with pytest.raises(BadRequestParameters) as error:
        pin(query, headers)
    assert error.value.status_code == 422
    return error.value.detail


@pytest.mark.parametrize(
    ("query", "headers", "expected"),
    [
        pytest.param("version=2", {}, Pin(2, None, True), id="query-version"),
        pytest.param("label=stable", {}, Pin(None, "stable", True), id="query-label"),
        pytest.param("", {"X-Model-Version": "3"}, Pin(3, None, True), id="header-version"),
        pytest.param("", {"X-Model-Label": "canary"}, Pin(None, "canary", True), id="header-label"),
    ],
)
def test_pin_from_query_or_header_is_requested(
    query: str, headers: dict[str, str], expected: Pin
) -> None:
    found = pin(query, headers)

    assert found == expected
    assert found.requested is True


def test_query_version_wins_over_header_version() -> None:
    assert pin("version=2", {"X-Model-Version": "5"}) == Pin(2, None, True)


def test_query_label_wins_over_header_label() -> None:
    assert pin("label=stable", {"X-Model-Label": "canary"}) == Pin(None, "stable", True)


@pytest.mark.parametrize(
    "configured",
    [
        pytest.param(NEWEST, id="newest"),
        pytest.param(Pin(4, None), id="version"),
        pytest.param(Pin(None, "stable"), id="label"),
    ],
)
def test_configured_pin_when_the_request_names_none(configured: Pin) -> None:
    found = pin("include_image=true", {"X-Request-ID": "r"}, configured)

    assert found == configured
    assert found.requested is False


def test_request_pin_overrides_the_configured_one() -> None:
    assert pin("version=2", configured=Pin(None, "stable")) == Pin(2, None, True)


@pytest.mark.parametrize(
    ("query", "headers"),
    [
        pytest.param("version=1&label=stable", {}, id="both-in-query"),
        pytest.param("", {"X-Model-Version": "1", "X-Model-Label": "stable"}, id="both-headers"),
        pytest.param("version=1", {"X-Model-Label": "stable"}, id="query-and-header"),
    ],
)
def test_version_and_label_together_are_refused(query: str, headers: dict[str, str]) -> None:
    assert refused(query, headers) == "Pin a model version or a label, not both."


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("0", id="zero"),
        pytest.param("-1", id="negative"),
        pytest.param("abc", id="letters"),
        pytest.param("", id="empty"),
        pytest.param("\u0663", id="arabic-indic-three"),
        pytest.param("1" * 20, id="20-digits"),
        pytest.param("1.0", id="decimal"),
        pytest.param("+1", id="plus-sign"),
        pytest.param(" 1", id="leading-space"),
        pytest.param("1e3", id="exponent"),
    ],
)
def test_bad_version_text_is_refused_in_query_and_header(text: str) -> None:
    from_query = refused(str(QueryParams({"version": text})))
    from_header = refused(headers={"X-Model-Version": text})

    assert from_query.startswith("version must be a positive integer")
    assert from_header.startswith("X-Model-Version must be a positive integer")


def test_version_of_19_digits_is_accepted() -> None:
    assert pin("version=" + "1" + "0" * 18).version == 10**18


def test_refused_version_is_quoted_and_cut_short() -> None:
    detail = refused("version=" + "x" * 100)

    assert "'" + "x" * 30 + "'" in detail
    assert "x" * 31 not in detail


@pytest.mark.parametrize(
    "label",
    [
        pytest.param("a/b", id="slash"),
        pytest.param("../../x", id="path"),
        pytest.param("l" * 65, id="65-characters"),
        pytest.param("with space", id="space"),
        pytest.param("stable:predict", id="colon"),
        pytest.param("", id="empty"),
    ],
)
def test_bad_label_is_refused_in_query_and_header(label: str) -> None:
    from_query = refused(str(QueryParams({"label": label})))
    from_header = refused(headers={"X-Model-Label": label})

    assert from_query == from_header
    assert from_query.startswith("The label must be 1-64 letters, digits, '_' or '-'")


def test_label_of_64_plain_characters_is_accepted() -> None:
    label = "A-z_0" + "9" * 59

    assert pin(str(QueryParams({"label": label}))) == Pin(None, label, True)
