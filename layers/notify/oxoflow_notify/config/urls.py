"""Whether a webhook URL can be sent to (scheme, host DNS can hold, port), worded without quoting any part of it."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

# The URL schemes a reason may name; any other scheme of a URL is not shown (it may be a
# fragment of a secret read from SSM or Secrets Manager).
NAMED_SCHEMES = ("http", "https", "ftp", "ftps", "sftp", "ssh", "ws", "wss", "file", "gopher", "mailto", "data")
# IDNA's label separators (U+002E and its ideographic and full-width forms).
_DOTS = re.compile("[.\u3002\uff0e\uff61]")
_LABEL = re.compile(rb"[A-Za-z0-9_-]+")  # one label of a host name once IDNA-encoded


def check_url(url: str) -> str | None:
    """Return what is wrong with a webhook URL, without quoting it or any part of it (not even
    the host or the port: either may be part of a secret); None when it is fine."""
    problems = url_problems(url)
    return "; it ".join(problems) if problems else None


def url_problems(url: str) -> list[str]:
    """Every rule a webhook URL breaks (one never hides another), each worded to follow "the URL"."""
    if not url.strip():
        return ["is empty"]
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        return ["contains whitespace or control characters"]
    try:
        parts = urlsplit(url)
    except ValueError:  # its text quotes the host: not repeated
        return ["is not a valid URL (its host cannot be parsed; a host in [brackets] must be an IPv6 address)"]
    if parts.scheme not in ("http", "https"):
        return [_scheme_problem(parts.scheme)]  # the rest of another scheme's URL follows other rules
    problems = [] if parts.hostname else ["has no host"]
    if parts.username is not None or parts.password is not None:
        problems.append("must not carry credentials (user:password@); use the secret key for signing")
    try:
        port = parts.port
    except ValueError:  # its text quotes the port: not repeated
        port = 0
    if port == 0:
        problems.append("is not usable: the URL's port is not a number between 1 and 65535")
    host_problem = check_host(parts.hostname, bracketed="[" in parts.netloc) if parts.hostname else None
    if host_problem:
        problems.append(f"is not usable: the URL's host {host_problem}")
    return problems


def _scheme_problem(scheme: str) -> str:
    if not scheme:
        return "must use http or https (scheme is missing)"
    if scheme in NAMED_SCHEMES:
        return f"must use http or https (scheme is {scheme})"
    return "must use http or https (another scheme)"  # not named: it may be part of a secret


def check_host(host: str, bracketed: bool = False) -> str | None:
    """What stops a URL's host (as urlsplit gives it: lowercase, no brackets) from being looked up,
    as the rest of a sentence about it and without quoting it; None for a usable name or IP literal."""
    if bracketed:
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])  # an optional zone (%25eth0) follows the address
        except ValueError:
            return "is in [brackets] but is not an IPv6 address"
        return None
    try:
        ipaddress.IPv4Address(host)
        return None
    except ValueError:
        pass
    if not host.isascii():
        # Encoders disagree on international names (IDNA 2003 here, IDNA 2008 in urllib3, or none
        # where the idna package is missing): refuse them here rather than fail at send time.
        return "has characters outside ASCII; write an international name in its xn-- (punycode) form"
    name = host[:-1] if _DOTS.fullmatch(host[-1:]) else host  # one trailing dot: a fully qualified name
    labels = _DOTS.split(name)
    if any(not label for label in labels):
        return "has an empty label (two dots in a row, or a dot at the start)"
    if any(len(label) > 63 for label in labels):
        return "has a label longer than 63 characters"
    return _check_encoded(name)


def _check_encoded(name: str) -> str | None:
    """What stops an ASCII name with sound labels, once IDNA-encoded, from being a host name."""
    try:
        encoded = name.encode("idna")
    except UnicodeError as exc:  # labels are not empty and not too long: so the encoded form is
        if "too long" in str(exc):
            return "has a label longer than 63 characters once IDNA-encoded"
        return "cannot be encoded as an internationalised domain name (IDNA)"
    if len(encoded) > 253:
        return "is longer than 253 characters"
    for label in encoded.split(b"."):
        if len(label) > 63:
            return "has a label longer than 63 characters once IDNA-encoded"
        if not _LABEL.fullmatch(label):
            return "has a character no host name can hold (only letters, digits, '-' and '_' between dots)"
    return None
