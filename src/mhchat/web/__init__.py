"""The aiohttp side: the application that owns the process, health, webhooks, dashboard."""
