"""RetryFunction: retry queue (SQS) -> one more attempt each, with partial batch failures."""

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from oxoflow_notify.observability import logger
from oxoflow_notify.wiring import build_notifier

notifier = build_notifier()
processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord) -> None:
    notifier.retry(record.body)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    notifier.ledger.register(context)
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
