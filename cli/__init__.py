"""Entry points run from a shell: admin tasks, history replay, the `make run` launcher."""
