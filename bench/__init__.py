"""Benchmarks: each measures mhchat beside a physical limit of the same machine, same run."""
