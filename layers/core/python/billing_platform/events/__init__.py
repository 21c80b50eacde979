"""Billing events tenants subscribe to: quota threshold crossings, grants used up or expired with a balance.
Detected off the hot path (the billing table's stream, a schedule), published once each to the event bus."""
