"""Local platform emulators: aiohttp servers on 127.0.0.1 speaking each platform's wire format.

They back the adapter tests, ``mhchat demo`` and the benchmarks. Each enforces auth and rate
limits like its platform, records what it was sent, offers fault injection, and lets a test make
participants act through the platform's own inbound path.
"""
