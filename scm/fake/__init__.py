"""A fake GitHub for tests and the demo: a real HTTP server on loopback speaking the parts of
the REST and GraphQL APIs scm/ uses, with in-memory state and fault injection."""
