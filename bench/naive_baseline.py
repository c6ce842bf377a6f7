"""The naive design this project replaces, kept only for comparison in benchmarks: one
FastAPI process that holds the Keras model and calls `model.predict` per request, with a
plain resize to 28x28 as its only preprocessing.

    MODEL_PATH=models/mnist/1 uvicorn bench.naive_baseline:app --port 8100
"""

import io
import os

import keras
import numpy as np
from fastapi import FastAPI, File, UploadFile
from PIL import Image

from contract import IMAGE_SIZE, OUTPUT_PROBABILITIES, SIGNATURE_IMAGE

app = FastAPI()
model = keras.Sequential(
    [keras.layers.TFSMLayer(os.environ["MODEL_PATH"], call_endpoint=SIGNATURE_IMAGE)]
)


@app.post("/predict")
async def predict(file: UploadFile = File(...)) -> dict[str, object]:  # noqa: B008
    image = Image.open(io.BytesIO(await file.read())).convert("L").resize((IMAGE_SIZE, IMAGE_SIZE))
    pixels = np.asarray(image, dtype=np.float32)[None, :, :, None] / 255.0
    probabilities = model.predict(pixels, verbose=0)[OUTPUT_PROBABILITIES][0]
    return {
        "predicted_digit": int(probabilities.argmax()),
        "confidence": float(probabilities.max()),
    }
