"""Campaigns: segments to touches, the contact ledger, channels and results."""
