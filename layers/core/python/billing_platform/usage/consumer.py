"""The SQS consumer's logic: one queue message (many records) -> raw items in the usage table."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pydantic import ValidationError as PydanticError

from billing_platform.dynamodb import utc_now
from billing_platform.errors import BillingError, PoisonMessageError
from billing_platform.settings import Settings, get_settings
from billing_platform.usage.models import UsageMessage, check_record
from billing_platform.usage.repository import UsageRecordRepository


class UsageConsumerService:
    """Validates a message and writes all its records, or raises so the message is redelivered."""

    def __init__(
        self,
        settings: Settings | None = None,
        repository: UsageRecordRepository | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._settings = settings or get_settings()
        self._repo = repository or UsageRecordRepository(self._settings)
        self._clock = clock

    def process_message(self, body: str) -> int:
        """Returns the records written. Raises `PoisonMessageError` or `UsageWriteIncomplete`."""
        try:
            message = UsageMessage.model_validate_json(body)
        except PydanticError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            raise PoisonMessageError(f"invalid usage message at {where or 'body'}: {first.get('msg')}") from None
        now = self._clock()
        for index, record in enumerate(message.records):
            try:
                check_record(record, self._settings.catalog, now=now, max_age=self._settings.usage_record_max_age)
            except BillingError as exc:
                raise PoisonMessageError(
                    f"record {index}: {exc.message}", details={"record_id": record.record_id}
                ) from None
        return self._repo.put_records(message.records)
