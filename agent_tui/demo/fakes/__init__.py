"""Local look-alikes of the Twilio and Telegram HTTP APIs (aiohttp).

The demo points the real connectors (through the real `twilio` and `python-telegram-bot`
libraries) at them, and the connector tests do the same; they ship in the package so that an
installed `agent-tui demo` has every channel.
"""
