"""Request/response shapes of the REST API (Create = request body, Public = response)."""
