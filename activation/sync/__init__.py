"""The sync engine: per audience and destination, diff the warehouse's wish against the ledger
and send only the changes, consent first (see `engine.sync_audience`)."""
