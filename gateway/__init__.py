"""registry-gateway: keeps the repositories of a plain Docker registry private."""

__version__ = "0.1.0"
