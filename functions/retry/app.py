"""RetryFunction: retry queue (SQS) -> one more attempt each, all at once, with partial batch failures.

Powertools' BatchProcessor is not used: it handles records one by one through a record handler,
and the whole batch is posted at once here (ten 30 s receivers take 30 s, not 300 s). The notifier
settles the batch and says, per record, which infrastructure fault must bring it back; the answer
is SQS's partial-batch response, built directly. A batch that failed whole fails the invocation
with its first fault, as BatchProcessor does, so Lambda's error metric and retry see it.
"""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from oxoflow_notify.observability import logger
from oxoflow_notify.wiring import build_notifier

notifier = build_notifier()


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, list[dict[str, str]]]:
    notifier.bind(context)
    records = event["Records"]
    receives = [int(record.get("attributes", {}).get("ApproximateReceiveCount", 1)) for record in records]
    _, errors = notifier.retry_batch([record["body"] for record in records], receives)
    failed = [(record["messageId"], error) for record, error in zip(records, errors, strict=True) if error is not None]
    if records and len(failed) == len(records):
        raise failed[0][1]
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id, _ in failed]}
