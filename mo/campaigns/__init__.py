"""The campaign path's platform code (docs/campaigns.md): the lifecycle, channel templates, schedules, audience
snapshots and the segment look-up campaigns use; the send decision, holdouts and the contact ledger live beside
them."""
