"""Secrets out of the config file: ``url`` and ``secret`` may name where the value is kept.

    url = "ssm:/oxoflow-notify/workflows/variant-calling/slack-url"        # SSM SecureString, decrypted
    secret = "secretsmanager:oxoflow-notify/workflows/variant-calling/lims#signing"  # one JSON key

Values are fetched with Powertools Parameters and cached per warm container for ``max_age``
seconds. Several teams share one deployment, so each file reads only its own scope
(scopes.secret_scope): ``<prefix><workflow>.oxoflow`` names under ``<SECRETS_PREFIX>workflows/<workflow>/``,
``_default.oxoflow`` names under ``<SECRETS_PREFIX>shared/``. parse_config refuses a reference outside
its file's scope (an ``invalid_webhook`` dead letter); this module checks it again before asking AWS,
and the template grants the functions nothing outside ``workflows/*`` and ``shared/*``.

Reasons never quote a resolved value or any part of it, and never quote a refused reference.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from oxoflow_notify.config import Webhook, is_reference
from oxoflow_notify.config.scopes import (
    DEFAULT_SECRETS_PREFIX,
    SHARED_SCOPE,
    WORKFLOWS_SCOPE,
    in_config_scopes,
    prefix_segments,
    reference_segments,
    secret_scope,
)
from oxoflow_notify.config.urls import check_url
from oxoflow_notify.config.webhook_values import check_whsec
from oxoflow_notify.errors import ReferenceProblem
from oxoflow_notify.lazy import Lazy

_MISSING = ("ParameterNotFound", "ResourceNotFoundException", "not found")


class References:
    def __init__(
        self,
        ssm: Callable[[], Any],
        secrets: Callable[[], Any],
        prefix: str = DEFAULT_SECRETS_PREFIX,
        max_age: int = 300,
        config_prefix: str = "workflows/",
        only: str | None = None,
    ) -> None:
        """``ssm`` and ``secrets`` build Powertools providers on first use (no clients at cold start).

        ``prefix`` is SECRETS_PREFIX and ``config_prefix`` CONFIG_PREFIX: a webhook's references must
        lie in the scope of the file it came from. ``only``: this instance reads that one reference
        and nothing else (the ingest function's own secret, kept outside every config's scope)."""
        self._providers: dict[str, Lazy[Any]] = {"ssm": Lazy(ssm), "secretsmanager": Lazy(secrets)}
        self.prefix = "/".join(prefix_segments(prefix)) + "/"
        self.config_prefix = config_prefix
        self.only = only
        self.max_age = max_age

    def _provider(self, kind: str) -> Any:
        return self._providers[kind].get()

    def _refusal(self, reference: str) -> str | None:
        """Why this instance will not read the reference (the rule, never the reference), or None."""
        if self.only is not None:
            return None if reference == self.only else "this function reads only its own secret (INGEST_SECRET)"
        if reference_segments(reference) is None or not in_config_scopes(reference, self.prefix):
            where = f"secretsmanager:{self.prefix}" if reference.startswith("secretsmanager:") else f"ssm:/{self.prefix}"
            return (f"a reference may only name secrets under {where}{WORKFLOWS_SCOPE}/<workflow>/ "
                    f"or {where}{SHARED_SCOPE}/ (SECRETS_PREFIX)")  # fmt: skip
        return None

    def resolve(self, reference: str) -> str:
        refusal = self._refusal(reference)
        if refusal is not None:  # before any AWS call
            raise ReferenceProblem(refusal, permanent=True)
        kind, _, name = reference.partition(":")
        key = None
        if kind == "secretsmanager" and "#" in name:
            name, key = name.split("#", 1)
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
        """The webhook with its references replaced by their values, checked like literals. Every
        reference is checked against the scope of the webhook's file first (parse_config did so
        already; this holds for webhooks from anywhere), so nothing outside it is ever read."""
        if not is_reference(webhook.url) and not any(is_reference(s) for s in webhook.secrets):
            return webhook
        scope = secret_scope(webhook.source, self.prefix, self.config_prefix)
        for key, value in (("url", webhook.url), *(("secret", s) for s in webhook.secrets)):
            if is_reference(value) and not scope.allows(value):
                raise ReferenceProblem(f"key '{key}': {scope.rule(value)}", permanent=True)
        url = webhook.url
        if is_reference(url):
            url = self.resolve(url)
            problem = check_url(url)  # names no part of the value (not even an unusual scheme)
            if problem:
                raise ReferenceProblem(f"the URL in {webhook.url} {problem}", permanent=True)
        secrets = tuple(self.resolve(s) if is_reference(s) else s for s in webhook.secrets)
        resolved = dataclasses.replace(webhook, url=url, secrets=secrets)
        if resolved.standard_webhooks:
            for number, (original, value) in enumerate(zip(webhook.secrets, secrets, strict=True), start=1):
                if check_whsec(value):  # not check_whsec's words: they count the value's bytes
                    which = f"the secret in {original}" if is_reference(original) else f"secret entry {number}"
                    raise ReferenceProblem(f"{which} is not a Standard Webhooks secret (whsec_ + base64 of 24 to 64 random bytes)",
                                           permanent=True)  # fmt: skip
        return resolved

    def publish_keys(self, keys: tuple[str, ...], source: str) -> tuple[str, ...]:
        """A workflow's [publish] keys with their references read, each checked against the scope of
        its file (``source``) first, as a webhook's are. ReferenceProblem, never quoting a value."""
        scope = secret_scope(source, self.prefix, self.config_prefix)
        for key in keys:
            if is_reference(key) and not scope.allows(key):
                raise ReferenceProblem(f"[publish] key: {scope.rule(key)}", permanent=True)
        return tuple(self.resolve(key) if is_reference(key) else key for key in keys)
