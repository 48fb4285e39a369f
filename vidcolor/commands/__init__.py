"""The command modules the ``vidcolor`` click group (``vidcolor/cli.py``) registers: thin
wrappers that parse options, build one config and call one library function."""
