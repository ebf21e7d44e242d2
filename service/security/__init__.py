"""Authentication: header parsing, token verification with its cache, usage recording and guards."""
