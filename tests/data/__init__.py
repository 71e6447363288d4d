"""Small fixture files for the data tests (and a self-registering toy dataset module)."""
