"""How far behind each stage of the usage pipeline is, for the pipeline as a whole and per tenant: the
figures `billing-admin freshness` prints, `GET /v1/ops/freshness` answers (the operator console shows
them) and the CloudWatch alarms watch, with the alarms' thresholds defined here once. `models.py` the
figures and thresholds, `repository.py` the reads (SQS, CloudWatch, the meter reporter's items),
`service.py` the report, `schemas.py` the HTTP shape."""
