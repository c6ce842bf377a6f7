"""Route modules; `gateway/main.py` is the only place they are included."""
