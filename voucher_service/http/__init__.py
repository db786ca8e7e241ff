"""What every HTTP request goes through: wiring, problems, transaction, auth, the one access
model, security, observability, health. Nothing here imports a unification's package."""
