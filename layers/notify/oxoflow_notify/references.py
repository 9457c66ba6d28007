"""Secrets out of the config file: ``url`` and ``secret`` may name where the value is kept.

    url = "ssm:/oxoflow-notify/team-slack-url"            # SSM SecureString, decrypted
    secret = "secretsmanager:oxoflow-notify/lims#signing"  # a Secrets Manager secret, optionally one JSON key

Values are fetched with Powertools Parameters and cached per warm container for ``max_age``
seconds. Only names under ``SECRETS_PREFIX`` are read (the template grants no more), so a config
author cannot make the function read another team's secrets.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from .config import Webhook, check_url, check_whsec, is_reference
from .errors import NotifyError

_MISSING = ("ParameterNotFound", "ResourceNotFoundException", "not found")


class ReferenceProblem(NotifyError):
    """A reference could not be resolved. ``permanent`` when waiting cannot help."""

    code = "unresolvable_reference"

    def __init__(self, message: str, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class References:
    def __init__(
        self,
        ssm: Callable[[], Any],
        secrets: Callable[[], Any],
        prefix: str = "oxoflow-notify/",
        max_age: int = 300,
    ) -> None:
        """``ssm`` and ``secrets`` build Powertools providers on first use (no clients at cold start)."""
        self._factories = {"ssm": ssm, "secretsmanager": secrets}
        self._providers: dict[str, Any] = {}
        self.prefix = prefix.strip("/") + "/"
        self.max_age = max_age

    def _provider(self, kind: str) -> Any:
        if kind not in self._providers:
            self._providers[kind] = self._factories[kind]()
        return self._providers[kind]

    def resolve(self, reference: str) -> str:
        kind, _, name = reference.partition(":")
        key = None
        if kind == "secretsmanager" and "#" in name:
            name, key = name.split("#", 1)
        if not name.lstrip("/").startswith(self.prefix) or ".." in name:
            raise ReferenceProblem(f"{reference} is outside the allowed prefix '{self.prefix}' (SECRETS_PREFIX)", permanent=True)
        try:
            if kind == "ssm":
                value = self._provider("ssm").get(name, max_age=self.max_age, decrypt=True)
            else:
                value = self._provider("secretsmanager").get(name, max_age=self.max_age)
        except Exception as exc:  # noqa: BLE001 - Powertools wraps every client error in GetParameterError
            missing = any(marker in str(exc) for marker in _MISSING)
            raise ReferenceProblem(
                f"{reference} does not exist" if missing else f"{reference} could not be read ({type(exc).__name__})",
                permanent=missing,
            ) from None
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        if key is not None:
            try:
                value = json.loads(value)[key]
            except (ValueError, KeyError, TypeError):
                raise ReferenceProblem(f"{reference}: the secret is not a JSON object with the key '{key}'", permanent=True) from None
        if not isinstance(value, str) or not value:
            raise ReferenceProblem(f"{reference} holds no text", permanent=True)
        return value

    def webhook(self, webhook: Webhook) -> Webhook:
        """The webhook with its references replaced by their values, checked like literals."""
        if not is_reference(webhook.url) and not any(is_reference(s) for s in webhook.secrets):
            return webhook
        url = webhook.url
        if is_reference(url):
            url = self.resolve(url)
            problem = check_url(url)
            if problem:
                raise ReferenceProblem(f"the URL in {webhook.url} {problem}", permanent=True)
        secrets = tuple(self.resolve(s) if is_reference(s) else s for s in webhook.secrets)
        resolved = dataclasses.replace(webhook, url=url, secrets=secrets)
        if resolved.standard_webhooks:
            for original, value in zip(webhook.secrets, secrets, strict=True):
                problem = check_whsec(value)
                if problem:
                    raise ReferenceProblem(f"the secret in {original} {problem}", permanent=True)
        return resolved
