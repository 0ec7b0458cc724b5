"""One department's broker: its database, users, durable operations and, next,
its use cases (publish, request, decide, exchange, audit)."""
