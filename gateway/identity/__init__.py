"""Identity: credentials from a request, and the backends that tell whose they are."""
