"""Domain-free helpers: nothing here imports from app.*."""
