"""Speed and memory benchmarks, run by `make bench`; each prints a report against its target."""
