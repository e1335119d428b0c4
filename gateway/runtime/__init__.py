"""The running config: an immutable snapshot per load, the holder that swaps it on reload."""
