"""DispatchFunction: SNS topic -> matching webhooks. Parses the event; the layer does the rest."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from oxoflow_notify.inbound.events import parse_timestamp
from oxoflow_notify.inbound.topic import signature_of
from oxoflow_notify.observability import logger
from oxoflow_notify.pipeline.notifier import Published
from oxoflow_notify.wiring import build_notifier

notifier = build_notifier()


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Four fields of each record, read directly: Powertools' SNSEvent class would be the natural
    # wrapper, but its package imports every event class (~20 ms of every cold start).
    notifier.bind(context)
    messages = [
        Published(
            message=sns["Message"], message_id=sns["MessageId"], timestamp=parse_timestamp(sns["Timestamp"]), signature=signature_of(sns)
        )
        for sns in (record["Sns"] for record in event["Records"])
    ]
    return notifier.dispatch(messages).as_dict()
