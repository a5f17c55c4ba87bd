"""Chainlit handlers split by concern; `chat_app.app` only wires them to Chainlit."""
