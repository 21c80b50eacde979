"""HTTP concerns shared by the API functions: resolver construction and error mapping."""
