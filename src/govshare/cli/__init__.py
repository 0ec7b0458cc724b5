"""The ``govshare`` command line. Each domain is a click group in its own module."""
