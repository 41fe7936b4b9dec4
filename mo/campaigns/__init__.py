"""The campaign path's platform code (docs/campaigns.md): the lifecycle, channel templates, schedules, audience
snapshots and the segment look-up campaigns use; the send decision, holdouts, the contact ledger, dispatch and
results; what the dispatcher, the channel workers and the results marts share."""
