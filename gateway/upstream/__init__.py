"""The upstream registry: its client, request forwarding, zero-copy blob bodies, the catalog."""
