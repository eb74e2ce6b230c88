"""One thin handler module per DIMSE service; each translates, calls a service, maps status."""
