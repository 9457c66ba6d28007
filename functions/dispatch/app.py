"""DispatchFunction: SNS topic -> matching webhooks. Parses the event; the layer does the rest."""

from typing import Any

from aws_lambda_powertools.utilities.data_classes import SNSEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from oxoflow_notify.events import parse_timestamp
from oxoflow_notify.notifier import Published
from oxoflow_notify.observability import logger
from oxoflow_notify.wiring import build_notifier

notifier = build_notifier()


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    messages = [
        Published(message=r.sns.message, message_id=r.sns.message_id, timestamp=parse_timestamp(r.sns.timestamp))
        for r in SNSEvent(event).records
    ]
    return notifier.dispatch(messages).as_dict()
