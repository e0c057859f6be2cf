"""Optional bus subscribers that talk to outside systems (VLM, MQTT); attached in the lifespan."""
