"""``python -m mhchat.emulators.bluesky``: serve until interrupted, print one JSON line."""

from mhchat.emulators.bluesky.cli import main

main()
