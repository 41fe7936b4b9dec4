"""Channels: the send message, provider adapters, the provider sandbox, channel workers and tracked links."""
