"""Policy: repository names and routes, token scopes, rules and the pure access decision."""
