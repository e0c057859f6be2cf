"""Live view: frames -> one JPEG per camera per tick -> every WebSocket subscriber (stage 5b)."""
