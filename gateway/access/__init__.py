"""Access: the request scope, authentication of every credential kind, the decision door."""
