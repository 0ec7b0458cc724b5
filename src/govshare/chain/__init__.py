"""The chain layer: connection, contract wrappers, transaction sending, deploy, indexer, dev node."""
