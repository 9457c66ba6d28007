"""RetryFunction: retry queue (SQS) -> one more attempt each, all at once, with partial batch failures."""

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from oxoflow_notify.observability import logger
from oxoflow_notify.wiring import build_notifier

notifier = build_notifier()
processor = BatchProcessor(event_type=EventType.SQS)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    # The whole batch is posted at once (ten 30 s receivers take 30 s, not 300 s); Powertools then
    # reports, record by record, the ones whose infrastructure fault must bring them back.
    notifier.bind(context)
    records = event["Records"]
    _, errors = notifier.retry_batch([record["body"] for record in records])
    failed = {record["messageId"]: error for record, error in zip(records, errors, strict=True) if error is not None}

    def record_handler(record: SQSRecord) -> None:
        if record.message_id in failed:
            raise failed[record.message_id]

    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
