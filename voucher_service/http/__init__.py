"""What every HTTP request goes through: wiring, problems, transaction, auth, the one access
model, security, observability, health. Nothing here imports a unification's package."""

# Every path of the versioned API starts with it (DESIGN §5).
API_PREFIX = "/api/v1"
