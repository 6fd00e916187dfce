"""Benchmarks: a Flow-Aggregator-shaped IPFIX stream (antrea_stream) and the decode benchmark
against python-ipfix (bench_decode). See docs/performance.md."""
