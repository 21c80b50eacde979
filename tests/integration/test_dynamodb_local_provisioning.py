from __future__ import annotations

from typing import Any

import pytest

from billing_platform import resources

pytestmark = pytest.mark.ddblocal


def test_tables_match_the_resource_definitions(dynamodb_local: Any, ddb_local_tables: dict[str, str]) -> None:
    client = dynamodb_local.client("dynamodb")
    for spec in resources.TABLES:
        table = client.describe_table(TableName=ddb_local_tables[spec.env_var])["Table"]
        assert [k["AttributeName"] for k in table["KeySchema"]] == ["pk", "sk"]
        assert table.get("StreamSpecification", {}).get("StreamEnabled", False) is spec.stream
        assert sorted(i["IndexName"] for i in table.get("GlobalSecondaryIndexes", [])) == sorted(
            i.name for i in spec.indexes
        )
