"""The sync jobs, one module each; every job is a plain function of a context and an account."""
