"""Entitlement data access (DynamoDB), one module per kind of item or write, joined in
`EntitlementRepository` (the package docstring maps them); use cases talk to it, never to boto3."""
