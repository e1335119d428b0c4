"""State not derived from the config: decision cache, lockout, upload bindings (memory / Redis)."""
