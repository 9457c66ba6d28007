"""A fresh process loading the dispatch handler as Lambda would, for the cold-start tests and
`make bench` alike: the layer and code directories on the path (argv[2], argv[3]), the handler
module loaded from its file, a Lambda context with the template's memory and timeout.
``LOAD_HANDLER`` is the code's head: append what the process does with ``app`` and ``Context()``."""

LOAD_HANDLER = """
import importlib.util, json, sys
sys.path[:0] = [sys.argv[2], sys.argv[3]]
spec = importlib.util.spec_from_file_location("app", sys.argv[3] + "/app.py")
app = importlib.util.module_from_spec(spec); spec.loader.exec_module(app)
class Context:
    function_name, memory_limit_in_mb, invoked_function_arn, aws_request_id = "DispatchFunction", 256, "arn", "r"
    def get_remaining_time_in_millis(self):
        return 60_000
"""

# The same, counting the boto3 clients the handler makes (``made``) from before it is loaded.
COUNTING_CLIENTS = """
import boto3
made, real = [], boto3.client
def client(service, *args, **kwargs):
    made.append(service)
    return real(service, *args, **kwargs)
boto3.client = client
"""
