"""`oxoflow-notify verify`: a receiver's side of a signature (X-Hub-Signature-256, X-OxoFlow-Signature, Standard
Webhooks), for debugging a receiver.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from .cli_common import Usage, _read, _read_bytes

# -- signatures ---------------------------------------------------------------------------------


def cmd_verify(args: argparse.Namespace) -> int:
    from oxoflow_notify.outbound.verify import standard_problem, verify_hub, verify_oxoflow

    secret = args.secret or os.environ.get("OXOFLOW_NOTIFY_SECRET")
    if args.secret_file:
        secret = _read(args.secret_file).strip()
    if not secret:
        raise Usage("verify: no secret: pass --secret-file FILE, --secret, or set OXOFLOW_NOTIFY_SECRET")
    body = sys.stdin.buffer.read() if args.body in (None, "-") else _read_bytes(args.body)
    headers = dict(_header(h) for h in args.header)
    if args.signature:
        value = args.signature.strip()
        name = "X-OxoFlow-Signature" if value.startswith("hmac-sha256=") else "X-Hub-Signature-256"
        headers[name] = value
    lowered = {k.lower(): v for k, v in headers.items()}
    if "webhook-signature" in lowered:
        try:
            problem = standard_problem(secret, headers, body, tolerance=args.tolerance)
        except ValueError:  # binascii.Error: the key is the base64 after whsec_
            raise Usage("verify: the secret is not a Standard Webhooks secret: write whsec_ followed by its base64") from None
        if problem:
            print(f"invalid Standard Webhooks request: {problem}", file=sys.stderr)
            return 1
        ok, scheme = True, "Standard Webhooks"
    elif "x-oxoflow-signature" in lowered:
        ok, scheme = verify_oxoflow([secret], body, lowered["x-oxoflow-signature"]), "X-OxoFlow-Signature"
    elif "x-hub-signature-256" in lowered:
        ok, scheme = verify_hub(secret, body, lowered["x-hub-signature-256"]), "X-Hub-Signature-256"
    else:
        raise Usage("verify: no signature: pass --signature 'sha256=...' or --header 'Name: value' (repeatable)")
    if ok:
        print(f"valid {scheme} signature ({len(body)} bytes)")
        return 0
    given = lowered.get("x-oxoflow-signature" if scheme == "X-OxoFlow-Signature" else "x-hub-signature-256", "")
    prefix = "hmac-sha256=" if scheme == "X-OxoFlow-Signature" else "sha256="
    if not re.fullmatch(re.escape(prefix) + "[0-9a-fA-F]{64}", given.strip()):
        print(f"malformed {scheme} signature: expected {prefix} and 64 hex digits, got {given.strip()[:80]!r}", file=sys.stderr)
        return 1
    print(f"invalid {scheme} signature: this secret did not sign these {len(body)} bytes", file=sys.stderr)
    return 1


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise Usage(f"verify: --header wants 'Name: value', got {text[:60]!r}")
    return name.strip(), value.strip()
