"""The handlers of /v2/, /token, health and metrics."""
