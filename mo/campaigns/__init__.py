"""The campaign path of the platform: the send decision and the contact ledger, holdouts, and what the
dispatcher, the channel workers and the results marts share (docs/campaigns.md)."""
