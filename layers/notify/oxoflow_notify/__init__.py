"""oxoflow-notify: fan out oxo-flow workflow lifecycle events to webhooks.

The package is the shared layer of the SAM application. Everything here is importable and
testable without Lambda: the handlers in ``functions/`` only parse their event and call in.
"""

__version__ = "0.1.0"
USER_AGENT = f"oxoflow-notify/{__version__}"
