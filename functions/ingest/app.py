"""IngestFunction: oxo-flow's native webhook POST (Function URL) -> signature checked -> the topic."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from oxoflow_notify.observability import logger
from oxoflow_notify.wiring import build_ingest

ingest = build_ingest()


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return ingest.handle(event)
