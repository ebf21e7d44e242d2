"""tokengate: API tokens (Waldur legacy tokens and Personal Access Tokens) governed by a Casbin policy."""
