"""Who is calling: operators and tenant API keys."""
