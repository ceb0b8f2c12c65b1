"""Subcommands beyond the core ones; each module exposes ``add_parser(subparsers)``."""
