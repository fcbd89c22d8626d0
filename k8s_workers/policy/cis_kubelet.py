"""The kubelet items of the CIS Kubernetes Benchmark, section 4.2, checked on the configuration the
program renders (KubeletConfiguration and the kubelet's extra flags; a flag wins over the file).

Item numbers and titles follow section 4.2 of the benchmark as kube-bench implements it (4.2.1-4.2.14).
`automated` items are the ones the program's defaults meet and only a weakening override breaks;
the others are the benchmark's manual items, where a node may have a reason (a hostname override, a
self-signed serving certificate) and a reviewer decides.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# The benchmark's list of strong ciphers for the kubelet (4.2.12).
STRONG_CIPHERS = frozenset(
    {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "TLS_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_RSA_WITH_AES_128_GCM_SHA256",
    }
)

# Flags that set what an item checks, and the config path they override.
_FLAG_FIELDS: dict[str, tuple[str, ...]] = {
    "--anonymous-auth": ("authentication", "anonymous", "enabled"),
    "--authorization-mode": ("authorization", "mode"),
    "--client-ca-file": ("authentication", "x509", "clientCAFile"),
    "--read-only-port": ("readOnlyPort",),
    "--streaming-connection-idle-timeout": ("streamingConnectionIdleTimeout",),
    "--make-iptables-util-chains": ("makeIPTablesUtilChains",),
    "--event-qps": ("eventRecordQPS",),
    "--tls-cert-file": ("tlsCertFile",),
    "--tls-private-key-file": ("tlsPrivateKeyFile",),
    "--rotate-certificates": ("rotateCertificates",),
    "--tls-cipher-suites": ("tlsCipherSuites",),
    "--pod-max-pids": ("podPidsLimit",),
    "--seccomp-default": ("seccompDefault",),
}


@dataclass(frozen=True)
class Finding:
    item: str  # "4.2.1"
    automated: bool
    message: str

    def __str__(self) -> str:
        return f"CIS {self.item}: {self.message}"


def _get(config: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = config
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _flags(args: Sequence[str]) -> dict[str, str]:
    flags: dict[str, str] = {}
    for arg in args:
        name, _, value = arg.partition("=")
        flags[name] = value if _ else "true"
    return flags


def effective(config: Mapping[str, Any], args: Sequence[str]) -> dict[tuple[str, ...], Any]:
    """What each checked field is once the flags are applied (flags as their text)."""
    flags = _flags(args)
    return {path: flags[flag] if flag in flags else _get(config, path) for flag, path in _FLAG_FIELDS.items()}


def _true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _false(value: Any) -> bool:
    return value is False or (isinstance(value, str) and value.lower() == "false")


def _number(value: Any) -> float | None:
    """Numbers arrive as floats from the engine (protobuf Struct) and as text from flags."""
    try:
        return None if value is None or isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        return None


def _zero_duration(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"(0+(\.0+)?(ns|us|ms|s|m|h)?)+", value.strip()) is not None


def check(config: Mapping[str, Any], args: Sequence[str] = ()) -> list[Finding]:
    """Every section 4.2 item the configuration does not meet; empty when it meets them all."""
    v = effective(config, args)
    flags = _flags(args)
    findings: list[Finding] = []

    def fail(item: str, automated: bool, message: str) -> None:
        findings.append(Finding(item, automated, message))

    if not _false(v[("authentication", "anonymous", "enabled")]):
        fail("4.2.1", True, "anonymous requests to the kubelet must be off (authentication.anonymous.enabled: false)")
    if str(v[("authorization", "mode")] or "") in ("", "AlwaysAllow"):
        fail("4.2.2", True, "the kubelet must authorize requests (authorization.mode: Webhook, not AlwaysAllow)")
    if not v[("authentication", "x509", "clientCAFile")]:
        fail("4.2.3", True, "the kubelet must verify client certificates (authentication.x509.clientCAFile)")
    port = v[("readOnlyPort",)]
    if port is not None and _number(port) != 0:
        fail("4.2.4", True, f"the unauthenticated read-only port must be off (readOnlyPort: 0, not {port})")
    if _zero_duration(v[("streamingConnectionIdleTimeout",)]):
        fail("4.2.5", True, "streaming connections must time out (streamingConnectionIdleTimeout not 0)")
    if _false(v[("makeIPTablesUtilChains",)]):
        fail("4.2.6", True, "the kubelet must manage its iptables chains (makeIPTablesUtilChains: true)")
    if "--hostname-override" in flags:
        fail(
            "4.2.7",
            False,
            "the node's name is overridden (--hostname-override): the benchmark asks for the host's own name",
        )
    qps = v[("eventRecordQPS",)]
    if qps is not None and (_number(qps) is None or _number(qps) < 0):
        fail("4.2.8", False, f"eventRecordQPS must capture events (0 or more, not {qps})")
    if not (v[("tlsCertFile",)] and v[("tlsPrivateKeyFile",)]) and not _true(config.get("serverTLSBootstrap")):
        fail(
            "4.2.9",
            False,
            "the kubelet serves a self-signed certificate (neither tlsCertFile/tlsPrivateKeyFile nor serverTLSBootstrap)",
        )
    if _false(v[("rotateCertificates",)]):
        fail("4.2.10", True, "client certificate rotation must stay on (rotateCertificates: true)")
    if _false(_get(config, ("featureGates", "RotateKubeletServerCertificate"))):
        fail("4.2.11", True, "serving certificate rotation must stay on (featureGates.RotateKubeletServerCertificate)")
    ciphers = v[("tlsCipherSuites",)]
    if isinstance(ciphers, str):
        ciphers = [c for c in ciphers.split(",") if c]
    weak = sorted(set(ciphers or ()) - STRONG_CIPHERS)
    if not ciphers or weak:
        fail(
            "4.2.12",
            True,
            f"only strong TLS ciphers (tlsCipherSuites){': not ' + ', '.join(weak) if weak else ' must be set'}",
        )
    pids = v[("podPidsLimit",)]
    if (_number(pids) or 0) <= 0:
        fail("4.2.13", True, f"pods need a PID limit (podPidsLimit above 0, not {pids})")
    if not _true(v[("seccompDefault",)]):
        fail("4.2.14", False, "containers should run with the runtime's default seccomp profile (seccompDefault: true)")
    return findings
