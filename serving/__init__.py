"""The model server tier: TF Serving configuration and a local server speaking its REST API."""
