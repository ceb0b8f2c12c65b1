"""``mhchat demo``: a whole #MHChat session on this machine, end to end.

The real service (SQLite, the in-process bus, the facilitation engine) and the real X, Bluesky
and Facebook adapters talk to local emulators of the three platforms, while simulated
participants (``script``) play a seeded session through each platform's own inbound path.
"""
