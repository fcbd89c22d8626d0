"""Value types of the stack config: each parser says what is wrong in words a user can act on.

Used as pydantic field types; a failing parser's ValueError becomes the message after
the key path, e.g. `nodes[1].address: '10.0.0.300' is not an IP address`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from cryptography import x509
from pydantic import AfterValidator, PlainValidator


class SecretPlaceholder(str):
    """A `secure:` value that could not be decrypted (render and tests run without the passphrase)."""


def describe(value: Any) -> str:
    """A value as error messages show it; key material is never echoed (messages reach CI logs)."""
    if isinstance(value, str) and ("PRIVATE KEY" in value or len(value) > 300):
        return "<a long or secret value, not shown>"
    return repr(value)


def invalid(value: Any, problem: str) -> ValueError:
    return ValueError(f"{describe(value)} {problem}")


def readable_file(value: str) -> str:
    """An existing file; '~' expanded. A path too long to exist is reported, not raised."""
    path = Path(value).expanduser()
    try:
        exists = path.is_file()
    except OSError:
        exists = False
    if not exists:
        raise invalid(value, "is not a readable file")
    return str(path)


def parse_ip(value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if isinstance(value, str):
        try:
            return ipaddress.ip_address(value)
        except ValueError:
            pass
    raise invalid(value, "is not an IP address")


def parse_cidr(value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if not isinstance(value, str) or "/" not in value:
        raise invalid(value, "is not a CIDR (expected e.g. 10.96.0.0/12)")
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        if "host bits set" in str(exc):
            fixed = ipaddress.ip_network(value, strict=False)
            raise invalid(value, f"has host bits set (did you mean {fixed}?)") from None
        raise invalid(value, "is not a CIDR (expected e.g. 10.96.0.0/12)") from None


def _sha256(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-f]{64}", value):
        raise invalid(value, "is not a sha256 (64 lower-case hex digits)")
    return value


_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti|P|Pi|E|Ei)?$")


def _quantity(value: Any) -> str:
    if isinstance(value, int) and value >= 0:
        return str(value)
    if not isinstance(value, str) or not _QUANTITY.match(value):
        raise invalid(value, "is not a Kubernetes quantity (e.g. 100m, 512Mi, 2Gi)")
    return value


def _threshold(value: Any) -> str:
    if isinstance(value, str) and re.fullmatch(r"[0-9]+(\.[0-9]+)?%", value):
        if float(value[:-1]) > 100:
            raise invalid(value, "is more than 100%")
        return value
    try:
        return _quantity(value)
    except ValueError:
        raise invalid(value, "is neither a percentage nor a quantity (e.g. 10%, 200Mi)") from None


def pem_certificate(value: Any) -> str:
    if not isinstance(value, str):
        raise invalid(value, "is not a PEM certificate")
    try:
        cert = x509.load_pem_x509_certificate(value.encode())
    except ValueError:
        raise ValueError("is not a parsable PEM certificate") from None
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise ValueError("is a certificate but not a CA (basicConstraints CA:TRUE missing)")
    return value.strip() + "\n"


_KEY_TYPES = r"(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521))"


def _host_key(value: Any) -> str:
    if isinstance(value, str) and re.fullmatch(rf"\S+ {_KEY_TYPES} [A-Za-z0-9+/]+=*", value.strip()):
        raise invalid(
            value, "starts with a host name, as `ssh-keyscan` prints it: drop the host, keep 'ssh-ed25519 AAAA...'"
        )
    if not isinstance(value, str) or not re.fullmatch(rf"{_KEY_TYPES} [A-Za-z0-9+/]+=*( .*)?", value.strip()):
        raise invalid(value, "is not an SSH public host key ('ssh-ed25519 AAAA...')")
    return value.strip()


def _strict_bool(value: Any) -> bool:
    """true or false only: YAML 1.2 (Pulumi's) reads `yes`/`no`/`on` as strings, which must not pass as booleans."""
    if isinstance(value, bool):
        return value
    raise invalid(value, "must be true or false (unquoted); `yes`, `no` and quoted words are strings")


IPAddress = Annotated[ipaddress.IPv4Address | ipaddress.IPv6Address, PlainValidator(parse_ip)]
Cidr = Annotated[ipaddress.IPv4Network | ipaddress.IPv6Network, PlainValidator(parse_cidr)]
Sha256 = Annotated[str, PlainValidator(_sha256)]
Quantity = Annotated[str, PlainValidator(_quantity)]
Threshold = Annotated[str, PlainValidator(_threshold)]
PemCertificate = Annotated[str, PlainValidator(pem_certificate)]
HostKey = Annotated[str, PlainValidator(_host_key)]
StrictBool = Annotated[bool, PlainValidator(_strict_bool)]
Arch = Literal["amd64", "arm64"]
ArtifactName = Literal["kubelet", "kube-proxy", "containerd", "runc", "cni-plugins"]
ReservedResource = Literal["cpu", "memory", "ephemeral-storage", "pid"]
EvictionSignal = Literal[
    "memory.available",
    "nodefs.available",
    "nodefs.inodesFree",
    "imagefs.available",
    "imagefs.inodesFree",
    "containerfs.available",
    "containerfs.inodesFree",
    "pid.available",
]


def kubernetes_rule(rule: Callable[[str], str | None], what: str) -> AfterValidator:
    """A string checked by one of `k8s_names`' rules; its sentence becomes the message."""

    def check(value: str) -> str:
        problem = rule(value)
        if problem:
            raise invalid(value, f"is not a valid {what}: {problem}")
        return value

    return AfterValidator(check)


def matching(pattern: str, problem: str) -> AfterValidator:
    """A string that must match `pattern` in full; else `'<value>' <problem>`."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise invalid(value, problem)
        return value

    return AfterValidator(check)


AbsolutePath = Annotated[str, matching(r"(/[A-Za-z0-9._-]+)+", "is not an absolute path")]


def yaml_problem(error: Exception) -> str:
    """A YAML error as a person reads it: line, column and what is wrong, no traceback."""
    mark = getattr(error, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    return f"{where}{getattr(error, 'problem', None) or error} (not valid YAML)"
