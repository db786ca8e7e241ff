"""Programme rules and state changes. Knows nothing of HTTP."""
