"""Email platforms Tessera pushes audiences to, each behind `base.Destination`."""
