"""Connectors: talk to mail servers, Twilio and Telegram; know nothing of the store or the UI."""
