"""Secret scopes: the names each config file may reference, so teams sharing a deployment cannot read each other's secrets.

Several teams share one deployment, each writing its own workflows' files: a file may reference
only its own names. <ConfigPrefix><workflow>.oxoflow: <SecretsPrefix>workflows/<workflow>/...;
<ConfigPrefix>_default.oxoflow (read for every workflow): <SecretsPrefix>shared/...
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from oxoflow_notify.defaults import DEFAULTS
from oxoflow_notify.inbound.events import WORKFLOW_NAME

from . import REFERENCE

DEFAULT_CONFIG_NAME = "_default"  # <prefix>_default.oxoflow: the org-wide file
CONFIG_SUFFIX = ".oxoflow"
WORKFLOWS_SCOPE = "workflows"
SHARED_SCOPE = "shared"
DEFAULT_SECRETS_PREFIX = DEFAULTS.secrets_prefix


def reference_segments(reference: str) -> tuple[str, ...] | None:
    """The path segments of the name a reference reads (``ssm:/a/b`` and ``secretsmanager:a/b#key``:
    ("a", "b")), or None for a name no scope can hold: not a valid reference, an empty segment
    (``//``, a trailing ``/``, a Secrets Manager name starting with ``/``), ``.`` or ``..``.
    Scopes are compared on these segments, so no spelling reaches outside its prefix."""
    if not REFERENCE.match(reference):
        return None
    if reference.startswith("ssm:"):
        segments = reference[len("ssm:/") :].split("/")
    else:
        segments = reference[len("secretsmanager:") :].split("#", 1)[0].split("/")
    if any(segment in ("", ".", "..") for segment in segments):
        return None
    return tuple(segments)


def prefix_segments(prefix: str) -> tuple[str, ...]:
    """SECRETS_PREFIX as path segments ('oxoflow-notify/' -> ("oxoflow-notify",)); ValueError for a
    prefix with an empty, '.' or '..' segment."""
    segments = tuple(prefix.strip("/").split("/"))
    if any(segment in ("", ".", "..") for segment in segments):
        raise ValueError(f"the secrets prefix must be path segments separated by '/', without '.' or '..' (got {prefix!r})")
    return segments


def in_config_scopes(reference: str, secrets_prefix: str) -> bool:
    """Whether a reference names a secret in some config's scope: under <prefix>workflows/<workflow>/
    or <prefix>shared/. The only names the dispatch and retry functions may read."""
    segments = reference_segments(reference)
    base = prefix_segments(secrets_prefix)
    if segments is None or segments[: len(base)] != base:
        return False
    rest = segments[len(base) :]
    if rest[:1] == (SHARED_SCOPE,):
        return len(rest) >= 2
    return rest[:1] == (WORKFLOWS_SCOPE,) and len(rest) >= 3 and bool(WORKFLOW_NAME.match(rest[1]))


def under_config_grants(reference: str, secrets_prefix: str) -> bool:
    """Whether a reference falls under what the dispatch and retry functions' IAM grants cover
    (<prefix>workflows/* and <prefix>shared/*), valid scope or not: the ingest secret must not."""
    segments = reference_segments(reference)
    base = prefix_segments(secrets_prefix)
    if segments is None:
        return True  # unreadable: refuse rather than guess
    return segments[: len(base)] == base and segments[len(base) : len(base) + 1] in ((WORKFLOWS_SCOPE,), (SHARED_SCOPE,))


def workflow_of(source: str, config_prefix: str | None = None) -> str | None:
    """The workflow a config file belongs to: '<config_prefix><workflow>.oxoflow' (an S3 key), or,
    with no config prefix, the file name's '<workflow>.oxoflow' (a local file); '_default' for the
    org-wide file; None when the name says neither.

    For the Lambda the key decides: the file at <prefix><workflow>.oxoflow is that workflow's. The
    CLI's validate and upload choose that key by one rule (tools.cli.file_workflow: --workflow, else
    [workflow] name, else this file name), so a file is checked as the workflow it is uploaded as."""
    if config_prefix is not None:
        if not source.startswith(config_prefix):
            return None
        name = source[len(config_prefix) :]
    else:
        name = re.split(r"[\\/]", source)[-1]
    if not name.endswith(CONFIG_SUFFIX):
        return None
    workflow = name[: -len(CONFIG_SUFFIX)]
    return workflow if workflow == DEFAULT_CONFIG_NAME or WORKFLOW_NAME.match(workflow) else None


@dataclass(frozen=True)
class SecretScope:
    """The names the references of one config file may read.

    ``segments`` is <SecretsPrefix>workflows/<workflow> for a workflow's file, <SecretsPrefix>shared
    for _default.oxoflow, and empty when the file's workflow is not known (nothing is allowed)."""

    source: str
    segments: tuple[str, ...]
    shared: bool = False

    def allows(self, reference: str) -> bool:
        """Whether the reference names a secret strictly inside this scope (compared on path
        segments of a normalised name: no '..', no '//', no trailing '/', no prefix of a segment)."""
        segments = reference_segments(reference)
        if not self.segments or segments is None:
            return False
        return len(segments) > len(self.segments) and segments[: len(self.segments)] == self.segments

    def under(self, reference: str) -> str:
        """Where this scope is, spelled as a reference of the same kind: ssm:/a/b/ or secretsmanager:a/b/."""
        path = "/".join(self.segments) + "/"
        return f"secretsmanager:{path}" if reference.startswith("secretsmanager:") else f"ssm:/{path}"

    def rule(self, reference: str) -> str:
        """Why a reference is refused: the rule only. The reference is never quoted (it may be a
        probe of another team's names)."""
        if not self.segments:
            return (f"a reference in {self.source} is refused: the file's workflow, and so its scope, is not known "
                    f"(name the file <workflow>{CONFIG_SUFFIX}, or pass --workflow)")  # fmt: skip
        whose = "the shared scope, as _default.oxoflow is read for every workflow" if self.shared else "the workflow's scope"
        return f"a reference in {self.source} may only name secrets under {self.under(reference)} ({whose})"


def secret_scope(source: str, secrets_prefix: str, config_prefix: str | None = None, workflow: str | None = None) -> SecretScope:
    """The scope of the config file ``source``: for ``workflow`` when given, else for the workflow
    its name says (workflow_of)."""
    base = prefix_segments(secrets_prefix)
    name = workflow if workflow is not None else workflow_of(source, config_prefix)
    if name == DEFAULT_CONFIG_NAME:
        return SecretScope(source, (*base, SHARED_SCOPE), shared=True)
    if name is not None and WORKFLOW_NAME.match(name):
        return SecretScope(source, (*base, WORKFLOWS_SCOPE, name))
    return SecretScope(source, ())
