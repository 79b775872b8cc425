"""The bank-facing service: BentoML, API keys per institution, consent scopes, hash-chained audit log."""
