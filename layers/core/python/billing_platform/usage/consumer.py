"""The SQS consumer's logic: one queue message (many records) -> raw items in the usage table."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from pydantic import ValidationError as PydanticError

from billing_platform.catalog import Catalog, load_catalog
from billing_platform.errors import BillingError, UnprocessableError
from billing_platform.settings import Settings, get_settings
from billing_platform.usage.models import UsageMessage, check_record
from billing_platform.usage.repository import UsageRecordRepository


class PoisonMessageError(UnprocessableError):
    """A message that no retry can make valid. It is reported failed like any other; after the queue's
    maxReceiveCount SQS moves it to the DLQ, where it waits for a fix and a redrive, never blocking."""

    code = "poison_message"


class UsageConsumerService:
    """Validates a message and writes all its records, or raises so the message is redelivered."""

    def __init__(
        self,
        settings: Settings | None = None,
        repository: UsageRecordRepository | None = None,
        catalog: Catalog | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings or get_settings()
        self._repo = repository or UsageRecordRepository(self._settings)
        self._catalog = catalog or load_catalog(self._settings.plan_catalog_path)
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
                check_record(record, self._catalog, now=now, max_age=self._settings.usage_record_max_age)
            except BillingError as exc:
                raise PoisonMessageError(
                    f"record {index}: {exc.message}", details={"record_id": record.record_id}
                ) from None
        return self._repo.put_records(message.records)
