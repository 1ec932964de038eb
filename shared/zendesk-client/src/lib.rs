//! A narrow Zendesk Ticketing API client
