"""Serverless billing for SaaS on AWS: the shared library deployed as a Lambda layer."""
