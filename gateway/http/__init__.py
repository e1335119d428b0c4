"""HTTP: the request scope middleware, connection limits, registry errors and the handlers."""
