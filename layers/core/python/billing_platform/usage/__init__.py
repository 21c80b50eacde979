"""Usage: records in (tracker, HTTP ingest, SQS consumer), the read model (stream aggregator), answers out.

Public API: `UsageTracker` (records onto the queue) and `UsageAggregator` (answers), both also at
`billing_platform`'s top level.

Module map (the house shape, with use-case modules in place of one service.py, and `layout.py` for the
read model's key and attribute encoding, pure, shared by the writer and the readers):
- models.py: records, wire envelope, buckets, answer values; schemas.py: the HTTP answers.
- layout.py: the read model's storage layout (day items, registry, progress) and why.
- repository.py: the only module that speaks DynamoDB (raw records, day items, registry, progress).
- queue.py: the only module that speaks SQS (packing and sending records).
- tracker.py, ingest.py, consumer.py, aggregator.py, queries.py, dimensions.py: the use cases (track,
  HTTP ingest, queue -> raw records, stream -> day items, answers, cardinality caps).
"""
