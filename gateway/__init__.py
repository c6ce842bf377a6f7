"""The gateway: a thin FastAPI service in front of TF Serving's REST API."""
