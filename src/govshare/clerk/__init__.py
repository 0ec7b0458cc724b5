"""A clerk's flows that run on the clerk's side of the broker API (bulk import)."""
