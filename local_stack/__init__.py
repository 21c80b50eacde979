"""The whole platform on one machine: DynamoDB Local, moto's server for SQS and the rest, the real
handlers behind an HTTP server, and pollers standing in for Lambda's event sources."""
