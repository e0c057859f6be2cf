"""Several Argus nodes as one system: PostgreSQL leases own cameras, Redis fans out and queues work."""
