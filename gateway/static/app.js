// Draw-a-digit page: draws on a canvas, posts it (or an uploaded file) to /predict and
// shows the answer, all ten probabilities and the 28x28 image the model saw; when the
// gateway stores feedback, "that's wrong, it was..." posts the same image to /feedback.
// Number mode widens the canvas, posts to /read and draws each digit's box over the canvas.
"use strict";

const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");
const $ = (id) => document.getElementById(id);
const numberMode = () => $("number-mode").checked;
const percent = (fraction) => (fraction * 100).toFixed(1) + "%";
let drawing = false;
let hasInk = false;
let feedbackEnabled = false;
let lastPrediction = null;  // {blob, name, digit, version} of the answer on screen

function clearPad() {
  ctx.clearRect(0, 0, pad.width, pad.height);
  hasInk = false;
}

function point(event) {
  const box = pad.getBoundingClientRect();
  return [(event.clientX - box.left) * (pad.width / box.width),
          (event.clientY - box.top) * (pad.height / box.height)];
}

pad.addEventListener("pointerdown", (event) => {
  drawing = true;
  pad.setPointerCapture(event.pointerId);
  const [x, y] = point(event);
  ctx.lineWidth = 18;             // a marker, like the strokes MNIST digits have
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.strokeStyle = "#000";
  ctx.beginPath();
  ctx.moveTo(x, y);
  ctx.lineTo(x + 0.1, y + 0.1);
  ctx.stroke();
  hasInk = true;
  $("boxes").replaceChildren();  // they framed the drawing before this stroke
});
pad.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  const [x, y] = point(event);
  ctx.lineTo(x, y);
  ctx.stroke();
});
for (const type of ["pointerup", "pointercancel", "pointerleave"]) {
  pad.addEventListener(type, () => { drawing = false; });
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
}

// Which model answers, from its model card: after a version swap the page says so.
let shownVersion = null;
async function showModel() {
  try {
    const response = await fetch("../model");
    if (!response.ok) return;
    const info = await response.json();
    if (!info.serving_version) return;
    const card = info.model_card || {};
    const parts = [`model version ${info.serving_version}`];
    if (card.architecture) parts.push(`recipe ${card.architecture}`);
    if (typeof card.test_accuracy === "number") {
      parts.push(`MNIST test accuracy ${(card.test_accuracy * 100).toFixed(2)}%`);
    }
    if (card.calibration && typeof card.calibration.test_ece === "number") {
      parts.push(`calibration error ${(card.calibration.test_ece * 100).toFixed(2)}%`);
    }
    if (typeof card.created_at === "string") parts.push(`trained ${card.created_at.slice(0, 10)}`);
    $("model-info").textContent = "Serving " + parts.join(" · ");
    $("model-info").hidden = false;
    shownVersion = info.serving_version;
  } catch (error) {
    // The page works without it.
  }
}

// Shows an answer in place of any error, and says which model gave it when that changed.
function reveal(answer, body) {
  $("error").hidden = true;
  $(answer).hidden = false;
  if (body.model_version !== shownVersion) showModel();
}

function showAnswer(body) {
  reveal("answer", body);
  $("digit").textContent = body.predicted_digit;
  $("confidence").textContent = percent(body.confidence);
  $("version").textContent = body.model_version;
  $("seen").src = body.normalized_image;
  const bars = $("bars");
  bars.replaceChildren(...body.probabilities.map((p, digit) => {
    const share = percent(p);
    const item = document.createElement("li");
    item.className = digit === body.predicted_digit ? "top" : "";
    item.setAttribute("aria-label", `digit ${digit}: ${share}`);
    const label = document.createElement("span");
    label.textContent = digit;
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = share;
    const value = document.createElement("span");
    value.textContent = share;
    item.append(label, bar, value);
    return item;
  }));
}

function apiHeaders() {
  const headers = {};
  const key = $("api-key").value.trim();
  if (key) headers["X-API-Key"] = key;
  return headers;
}

function resetFeedback() {
  $("feedback").hidden = !(feedbackEnabled && lastPrediction);
  $("feedback-label").value = "";
  $("feedback-send").disabled = false;
  $("feedback-status").textContent = "";
  $("feedback-status").classList.remove("failed");
}

function showFeedbackStatus(message, failed) {
  $("feedback-status").textContent = message;
  $("feedback-status").classList.toggle("failed", failed);
}

async function sendFeedback(event) {
  event.preventDefault();
  const label = $("feedback-label").value;
  if (!lastPrediction || label === "") { showFeedbackStatus("Choose the digit it was.", true); return; }
  const form = new FormData();
  form.append("file", lastPrediction.blob, lastPrediction.name);
  form.append("label", label);
  form.append("predicted_digit", String(lastPrediction.digit));
  form.append("model_version", lastPrediction.version);
  $("feedback-send").disabled = true;
  let response;
  try {
    response = await fetch("../feedback", { method: "POST", body: form, headers: apiHeaders() });
  } catch (error) {
    $("feedback-send").disabled = false;
    showFeedbackStatus("The service cannot be reached. Check your connection and try again.", true);
    return;
  }
  let body = {};
  try { body = await response.json(); } catch (error) { /* not JSON: use the status below */ }
  if (response.ok) {
    showFeedbackStatus("Thanks — saved.", false);
  } else {
    $("feedback-send").disabled = false;
    if (response.status === 401) $("key-row").hidden = false;
    showFeedbackStatus(body.detail || `The service answered ${response.status}. Try again shortly.`, true);
  }
}

// Posts the image as the multipart field "file": answers the JSON body, or shows the error
// and answers null.
async function post(path, blob, name) {
  const form = new FormData();
  form.append("file", blob, name);
  let response;
  try {
    response = await fetch(path, { method: "POST", body: form, headers: apiHeaders() });
  } catch (error) {
    showError("The service cannot be reached. Check your connection and try again.");
    return null;
  }
  let body = {};
  try { body = await response.json(); } catch (error) { /* not JSON: use the status below */ }
  if (response.ok) return body;
  if (response.status === 401) $("key-row").hidden = false;
  showError(body.detail || `The service answered ${response.status}. Try again shortly.`);
  return null;
}

async function classify(blob, name) {
  const body = await post("../predict?include_image=true", blob, name);
  if (!body) return;
  lastPrediction = { blob, name, digit: body.predicted_digit, version: body.model_version };
  showAnswer(body);
  resetFeedback();
}

// frame places the upload on the canvas ({x, y, scale}); null when it is not shown there.
async function read(blob, name, frame) {
  $("number-answer").hidden = true;
  $("boxes").replaceChildren();
  const body = await post("../read", blob, name);
  if (!body) return;
  reveal("number-answer", body);
  $("number").textContent = body.number;
  $("number-confidence").textContent = percent(body.confidence);
  $("number-version").textContent = body.model_version;
  if (!frame) return;
  $("boxes").replaceChildren(...body.digits.map(({ digit, confidence, box: [x0, y0, x1, y1] }) => {
    const box = document.createElement("div");
    box.className = "box";
    box.style.left = percent((frame.x + x0 * frame.scale) / pad.width);
    box.style.top = percent((frame.y + y0 * frame.scale) / pad.height);
    box.style.width = percent((x1 - x0) * frame.scale / pad.width);
    box.style.height = percent((y1 - y0) * frame.scale / pad.height);
    const label = document.createElement("span");
    label.textContent = `${digit} · ${percent(confidence)}`;
    box.append(label);
    return box;
  }));
}

// An upload in number mode is shown fitted on the canvas, so its boxes can be drawn over it.
async function readFile(file) {
  clearPad();
  let frame = null;
  try {
    const image = await createImageBitmap(file);
    const scale = Math.min(pad.width / image.width, pad.height / image.height);
    const [width, height] = [image.width * scale, image.height * scale];
    frame = { x: (pad.width - width) / 2, y: (pad.height - height) / 2, scale };
    ctx.drawImage(image, frame.x, frame.y, width, height);
    hasInk = true;
  } catch (error) {
    // A picture this browser cannot show is still read; its boxes are not drawn.
  }
  read(file, file.name, frame);
}

const handleFile = (file) => (numberMode() ? readFile(file) : classify(file, file.name));

$("predict").addEventListener("click", () => {
  if (!hasInk) { showError(numberMode() ? "Draw a number first." : "Draw a digit first."); return; }
  pad.toBlob((blob) => (numberMode()
    ? read(blob, "drawing.png", { x: 0, y: 0, scale: 1 })
    : classify(blob, "drawing.png")), "image/png");
});
function clearAll() {
  clearPad();
  lastPrediction = null;
  resetFeedback();
  $("answer").hidden = true;
  $("number-answer").hidden = true;
  $("boxes").replaceChildren();
  $("error").hidden = true;
  $("bars").replaceChildren();
}
$("clear").addEventListener("click", clearAll);
// Number mode: a canvas three digits wide and as high, sent to /read.
function setMode() {
  const number = numberMode();
  document.body.classList.toggle("number", number);
  pad.width = number ? 3 * pad.height : pad.height;
  pad.setAttribute("aria-label", `Drawing canvas: draw ${number ? "a number" : "a digit"} here`);
  $("predict").textContent = number ? "Read" : "Predict";
  clearAll();
}
for (const radio of document.getElementsByName("mode")) radio.addEventListener("change", setMode);
$("feedback").addEventListener("submit", sendFeedback);
$("file").addEventListener("change", () => {
  const file = $("file").files[0];
  if (file) handleFile(file);
});
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  const file = event.dataTransfer.files[0];
  if (file) handleFile(file);
});

fetch("settings").then((r) => r.json()).then((settings) => {
  if (settings.api_key_required) $("key-row").hidden = false;
  feedbackEnabled = Boolean(settings.feedback_enabled);
  $("feedback").hidden = !(feedbackEnabled && lastPrediction);
}).catch(() => {});
showModel();
setMode();  // the browser may bring back the mode chosen before a reload
