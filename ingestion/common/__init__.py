"""What every Tessera source shares: a patient HTTP session, clear errors, and quarantine."""
