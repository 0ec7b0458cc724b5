"""govshare: consortium ledger for safe record sharing between government departments."""

__version__ = "0.1.0"
