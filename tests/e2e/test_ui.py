"""The draw-a-digit page in a real headless Chromium, against the gateway and model server."""

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from contract import REFUSAL_BLANK
from tests.drawings import draw_digit, encode
from tests.e2e.conftest import Stack, free_port, gateway

pytestmark = pytest.mark.e2e
playwright = pytest.importorskip("playwright.sync_api")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (the CI script installs Debian's chromium)")
    with playwright.sync_playwright() as driver:
        # The flags keep Chromium from reaching out to the network on its own.
        chromium = driver.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield chromium
        chromium.close()


Stroke = tuple[tuple[float, float], tuple[float, float]]  # from, to: fractions of the canvas
SEVEN: list[Stroke] = [((0.25, 0.2), (0.75, 0.2)), ((0.75, 0.2), (0.45, 0.85))]


def draw(page: object, strokes: list[Stroke]) -> None:
    """Drag the mouse along each stroke, as a user draws on the canvas."""
    box = page.locator("#pad").bounding_box()  # type: ignore[attr-defined]
    left, top, width, height = box["x"], box["y"], box["width"], box["height"]
    mouse = page.mouse  # type: ignore[attr-defined]
    for (x0, y0), (x1, y1) in strokes:
        mouse.move(left + x0 * width, top + y0 * height)
        mouse.down()
        mouse.move(left + x1 * width, top + y1 * height, steps=12)
        mouse.up()


def draw_seven(page: object) -> None:
    draw(page, SEVEN)


def test_ui_draw_predict_upload_and_errors(
    shared_stack: Stack, browser: object, tmp_path: Path
) -> None:
    page = browser.new_page(viewport={"width": 900, "height": 800})  # type: ignore[attr-defined]
    page.goto(f"{shared_stack.gateway.url}/ui/")
    assert page.locator("#key-row").is_hidden()  # this gateway needs no API key

    page.click("#predict")
    assert page.locator("#error").inner_text() == "Draw a digit first."

    draw_seven(page)
    page.click("#predict")
    page.wait_for_selector("#answer:not([hidden])")
    assert page.locator("#digit").inner_text() in [str(d) for d in range(10)]
    assert page.locator("#bars li").count() == 10
    assert page.locator("#version").inner_text() == "1"
    # Which model answers, from its model card (the tiny test model's recipe is "seed").
    page.wait_for_selector("#model-info:not([hidden])")
    assert (
        page.locator("#model-info").inner_text().startswith("Serving model version 1 · recipe seed")
    )
    assert page.locator("#seen").get_attribute("src").startswith("data:image/png;base64,")
    assert page.locator("#feedback").is_hidden()  # this gateway stores no feedback
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui-drawn-digit.png"), full_page=True)

    upload = tmp_path / "four.png"
    upload.write_bytes(encode(draw_digit(4, size=200, stroke=6, dark_on_light=True)))
    page.set_input_files("#file", str(upload))
    page.wait_for_function("document.querySelector('#seen').src.length > 0")
    assert page.locator("#error").is_hidden()

    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    page.set_input_files("#file", str(text))
    page.wait_for_selector("#error:not([hidden])")
    assert "not a readable image" in page.locator("#error").inner_text()

    page.click("#clear")
    assert page.locator("#answer").is_hidden()


def test_ui_fits_a_phone_screen(shared_stack: Stack, browser: object) -> None:
    page = browser.new_page(viewport={"width": 375, "height": 700}, has_touch=True)  # type: ignore[attr-defined]
    page.goto(f"{shared_stack.gateway.url}/ui/")

    canvas = page.locator("#pad").bounding_box()
    assert canvas["x"] >= 0 and canvas["x"] + canvas["width"] <= 375
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page.screenshot(path=str(ARTIFACTS / "ui-phone.png"))


def test_ui_thats_wrong_sends_the_drawing_as_feedback(
    shared_stack: Stack, browser: object, tmp_path: Path
) -> None:
    folder = tmp_path / "feedback"
    front = gateway(
        shared_stack.serving.url, free_port(), tmp_path / "gateway.log", feedback_dir=str(folder)
    )
    try:
        front.start()
        page = browser.new_page(viewport={"width": 900, "height": 800})  # type: ignore[attr-defined]
        page.goto(f"{front.url}/ui/")
        draw_seven(page)
        page.click("#predict")
        page.wait_for_selector("#feedback:not([hidden])")
        shown = page.locator("#digit").inner_text()

        page.select_option("#feedback-label", "1")
        page.click("#feedback-send")
        # A locator wait: the page's CSP forbids the eval a string predicate would need.
        playwright.expect(page.locator("#feedback-status")).to_have_text("Thanks — saved.")
        page.screenshot(path=str(ARTIFACTS / "ui-feedback.png"), full_page=True)

        page.click("#clear")
        assert page.locator("#feedback").is_hidden()
    finally:
        front.stop()

    (stored,) = folder.glob("*.json")
    metadata = json.loads(stored.read_text())
    assert (metadata["label"], metadata["predicted_digit"], metadata["model_version"]) == (
        1,
        int(shown),
        "1",
    )
    assert (folder / metadata["image"]).is_file()


def test_ui_number_mode_reads_a_one_and_a_seven_and_boxes_them(
    shared_stack: Stack, browser: object, tmp_path: Path
) -> None:
    page = browser.new_page(viewport={"width": 900, "height": 800})  # type: ignore[attr-defined]
    page.goto(f"{shared_stack.gateway.url}/ui/")
    page.get_by_label("Number", exact=True).check()
    read = page.get_by_role("button", name="Read")
    canvas = page.locator("#pad").bounding_box()
    assert canvas["width"] > 2.5 * canvas["height"]  # room for a few digits in a row

    # A 1 in the left third and a 7 in the right half, far apart.
    one: list[Stroke] = [((0.2, 0.15), (0.2, 0.85))]
    seven = [((0.55 + x / 3, y), (0.55 + x1 / 3, y1)) for (x, y), (x1, y1) in SEVEN]
    draw(page, one + seven)
    read.click()
    page.wait_for_selector("#number-answer:not([hidden]), #error:not([hidden])")
    assert page.locator("#error").is_hidden(), page.locator("#error").inner_text()
    number = page.locator("#number").inner_text()
    assert len(number) == 2 and number.isdigit()
    assert page.locator("#number-confidence").inner_text().endswith("%")
    assert page.locator("#number-version").inner_text() == "1"
    boxes = page.locator("#boxes .box")
    assert boxes.count() == 2
    # Each box frames its digit on the canvas and is labelled with the digit it was read as.
    centres = [
        (b["x"] + b["width"] / 2 - canvas["x"]) / canvas["width"]
        for b in (boxes.nth(i).bounding_box() for i in range(2))
    ]
    assert centres[0] < 0.35 and centres[1] > 0.5
    assert [label.split(" · ")[0] for label in boxes.all_inner_texts()] == list(number)
    page.screenshot(path=str(ARTIFACTS / "ui-number.png"), full_page=True)

    blank = tmp_path / "blank.png"
    blank.write_bytes(encode(Image.new("L", (600, 200), 255)))
    page.set_input_files("#file", str(blank))
    page.wait_for_selector("#error:not([hidden])")
    assert page.locator("#error").inner_text() == REFUSAL_BLANK  # the gateway's own refusal
    assert page.locator("#number-answer").is_hidden()
    assert boxes.count() == 0

    page.click("#clear")
    read.click()
    assert page.locator("#error").inner_text() == "Draw a number first."
