"""Pure contracts: no I/O, nothing of keel imported. Every DTO carries a `schema_version`."""
