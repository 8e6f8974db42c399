"""Load and fault benchmarks for leadrelay: `make bench` and `make drill`.

Everything runs as real processes on free 127.0.0.1 ports (see `bench.stack`), apart from
`make run` and from the test suite's servers.
"""
