//! A dev-only Zendesk Ticketing API simulator that also sends signed webhooks
