"""The one price table every bench uses, with the date it was taken. Re-check before quoting: it was
recalled offline (no internet on these machines), from AWS's public price pages, us-east-1."""

from __future__ import annotations

PRICES_AS_OF = (
    "2024-11-01 (us-east-1, AWS public price pages, DynamoDB on-demand after the Nov 2024 cut; recalled offline)"
)

SQS_PER_MILLION = 0.40  # standard queue, per million requests; each 64 KiB chunk of payload is one request
SQS_CHUNK_BYTES = 64 * 1024
DDB_WRU_PER_MILLION = 0.625  # on-demand write request units (1 KB each; 2 per item in a transaction)
DDB_RRU_PER_MILLION = 0.125  # on-demand read request units (4 KB strongly consistent, 8 KB eventually)
LAMBDA_PER_MILLION = 0.20  # invocations
LAMBDA_GB_SECOND = 0.0000166667  # x86
STREAMS_READS_PER_MILLION = 0.0  # GetRecords by a Lambda event source mapping are free


def price_table() -> str:
    return (
        f"prices as of {PRICES_AS_OF}:\n"
        f"  SQS ${SQS_PER_MILLION}/M requests (64 KiB chunks); DynamoDB on-demand ${DDB_WRU_PER_MILLION}/M WRU, "
        f"${DDB_RRU_PER_MILLION}/M RRU; DynamoDB Streams reads by Lambda ${STREAMS_READS_PER_MILLION}; "
        f"Lambda ${LAMBDA_PER_MILLION}/M invocations, ${LAMBDA_GB_SECOND}/GB-s"
    )
