"""Stage 4: findings become events, events reach storage and subscribers."""
