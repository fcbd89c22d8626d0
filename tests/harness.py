"""Run `__main__.py` under Pulumi mocks and record what it declares.

The tls mocks are real: keys are generated and requests signed with the `cryptography`
package, so tests verify certificates as a cluster would.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import runpy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from google.protobuf import json_format
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import settings

from components.membership import new_token
from tests.pki import TestCa, make_ca

PROJECT_DIR = Path(__file__).resolve().parent.parent
SECRET_SIG = "4dabf18193072939515e22adb298388d"
SECRET_VALUE_SIG = "1b47061264138c4ac30d75fd1eb44270"  # the value under SECRET_SIG that marks a secret
ISSUED_AT = 1767225600  # 2026-01-01T00:00:00Z: when the mocked bootstrap tokens were created
DYNAMIC = "pulumi-python:dynamic:Resource"


@dataclass
class Registration:
    type: str
    name: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    secret_inputs: set[str]  # dotted paths of inputs sent as secrets
    parent: str
    additional_secret_outputs: list[str] = field(default_factory=list)
    delete_before_replace: bool = False
    dependencies: list[str] = field(default_factory=list)
    retain_on_delete: bool = False
    ignore_changes: list[str] = field(default_factory=list)
    id: str = ""
    plain: Any = None  # inputs and outputs with every secret value blanked: what a state export shows in clear


@dataclass
class Run:
    resources: list[Registration] = field(default_factory=list)
    component_outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    stack_outputs: dict[str, Any] = field(default_factory=dict)  # what the program exports
    secret_outputs: set[str] = field(default_factory=set)  # which of them are secrets
    error: BaseException | None = None

    def of_type(self, type_: str) -> list[Registration]:
        return [r for r in self.resources if r.type == type_]

    def named(self, name: str) -> Registration:
        (found,) = [r for r in self.resources if r.name == name]
        return found


def _pem_key(key: Any) -> str:
    fmt = serialization.PrivateFormat.TraditionalOpenSSL
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()


_KEY_USAGES = {
    "digital_signature": "digital_signature",
    "key_encipherment": "key_encipherment",
    "cert_signing": "key_cert_sign",
    "crl_signing": "crl_sign",
}
_EXT_USAGES = {"client_auth": ExtendedKeyUsageOID.CLIENT_AUTH, "server_auth": ExtendedKeyUsageOID.SERVER_AUTH}


def sign_request(inputs: dict[str, Any]) -> dict[str, Any]:
    """What pulumi-tls' LocallySignedCert does, for the inputs it receives."""
    csr = x509.load_pem_x509_csr(inputs["certRequestPem"].encode())
    ca_cert = x509.load_pem_x509_certificate(inputs["caCertPem"].encode())
    ca_key = serialization.load_pem_private_key(inputs["caPrivateKeyPem"].encode(), password=None)
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    end = now + datetime.timedelta(hours=int(inputs["validityPeriodHours"]))
    uses = inputs.get("allowedUses") or []
    usage_flags = {v: False for v in _KEY_USAGES.values()}
    for use in uses:
        if use in _KEY_USAGES:
            usage_flags[_KEY_USAGES[use]] = True
    builder = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(ca_cert.subject)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                content_commitment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False, **usage_flags,
            ),
            critical=True,
        )
    )  # fmt: skip
    ext = [_EXT_USAGES[u] for u in uses if u in _EXT_USAGES]
    if ext:
        builder = builder.add_extension(x509.ExtendedKeyUsage(ext), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    return {
        **inputs,
        "certPem": cert.public_bytes(serialization.Encoding.PEM).decode(),
        "validityStartTime": now.isoformat().replace("+00:00", "Z"),
        "validityEndTime": end.isoformat().replace("+00:00", "Z"),
        "readyForRenewal": False,
    }


_SIGNER: list[TestCa] = []


def _cluster_signer() -> TestCa:
    """The CA a mock cluster signs kube-proxy's certificate with (made once per test run)."""
    if not _SIGNER:
        _SIGNER.append(make_ca("mock-cluster-signer"))
    return _SIGNER[0]


class WorkerMocks(pulumi.runtime.Mocks):
    def __init__(self, preview: bool = False, stacks: dict[str, dict[str, Any]] | None = None):
        self.preview = preview  # as in a first preview: nothing computed is known yet
        self.stacks = stacks or {}  # other stacks' outputs, by name (what a StackReference reads)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        inputs = _unwrap(dict(args.inputs))
        outputs = dict(args.inputs)  # secrets stay wrapped on the way back
        if self.preview:
            return "", outputs  # computed outputs (results, keys, certificates, stdout) are unknown
        if args.typ == "pulumi:pulumi:StackReference":  # read, known at preview too
            outs = self.stacks[inputs["name"]]
            secret = [k for k in outs if "Key" in k]  # as exported: the program marks its keys secret
            return inputs["name"], {"name": inputs["name"], "outputs": outs, "secretOutputNames": secret}
        resource_id = f"{args.name}-id"
        if args.typ == "tls:index/privateKey:PrivateKey":
            if inputs.get("algorithm") == "ECDSA":
                curves = {"P256": ec.SECP256R1(), "P384": ec.SECP384R1(), "P224": ec.SECP224R1()}
                key: Any = ec.generate_private_key(curves[inputs.get("ecdsaCurve", "P224")])
            else:
                key = rsa.generate_private_key(public_exponent=65537, key_size=int(inputs.get("rsaBits", 2048)))
            outputs["privateKeyPem"] = _pem_key(key)
            outputs["publicKeyPem"] = (
                key.public_key()
                .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
                .decode()
            )
        elif args.typ == "tls:index/certRequest:CertRequest":
            key = serialization.load_pem_private_key(inputs["privateKeyPem"].encode(), password=None)
            subject = inputs.get("subject") or {}
            attrs = [x509.NameAttribute(NameOID.COMMON_NAME, subject["commonName"])]
            if subject.get("organization"):
                attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, subject["organization"]))
            csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs)).sign(key, hashes.SHA256())  # type: ignore[arg-type]
            outputs["certRequestPem"] = csr.public_bytes(serialization.Encoding.PEM).decode()
        elif args.typ == "tls:index/locallySignedCert:LocallySignedCert":
            outputs.update({k: v for k, v in sign_request(inputs).items() if k not in inputs})
        elif args.typ == DYNAMIC and args.name == "kube-proxy-cert":
            # As the cluster's signer (kubernetes.io/kube-apiserver-client) would, with a CA of its own.
            signed = sign_request(
                {
                    "certRequestPem": inputs["requestPem"],
                    "caCertPem": _cluster_signer().cert_pem,
                    "caPrivateKeyPem": _cluster_signer().key_pem,
                    "validityPeriodHours": inputs["validityHours"],
                    "allowedUses": ["digital_signature", "client_auth"],
                }
            )
            outputs.update(certPem=signed["certPem"], expiresAt=int(time.time()) + 3600 * inputs["validityHours"])
        elif args.typ == DYNAMIC and args.name.endswith("-membership"):
            # As components.membership's provider: membership-<node> as id, the token's expiry counted
            # from its creation.
            # The provider makes the token; the engine keeps tokenSecret secret (additionalSecretOutputs).
            resource_id = f"membership-{inputs['node']}"
            token_id, token_secret = new_token()
            outputs["tokenId"] = token_id
            outputs["tokenSecret"] = {SECRET_SIG: SECRET_VALUE_SIG, "value": token_secret}
            outputs["expires_at"] = ISSUED_AT + int(inputs["ttlHours"]) * 3600
            outputs.update(restarts=[], drained=False)
        elif args.typ == DYNAMIC and args.name.endswith("-registration"):
            resource_id = f"registration-{inputs['node']}"
            outputs.update(approved=[], left_alone=[])
        elif args.typ == "command:remote:Command":
            outputs["stdout"] = ""
            outputs["stderr"] = ""
        return resource_id, outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        if args.token == "pulumi:pulumi:readStackOutputs":  # the engine's built-in provider
            name = args.args["name"]
            if name not in self.stacks:
                raise LookupError(f"no stack named {name!r}")
            return {"name": name, "outputs": self.stacks[name], "secretOutputNames": []}
        return {}


def _secret_paths(value: Any, prefix: str = "") -> list[str]:
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == SECRET_VALUE_SIG:
            return [prefix]
        return [p for k, v in value.items() for p in _secret_paths(v, f"{prefix}.{k}" if prefix else k)]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _secret_paths(v, f"{prefix}[{i}]")]
    return []


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == SECRET_VALUE_SIG:
            return "[secret]"
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _unwrap(value: Any) -> Any:
    if isinstance(value, dict):
        if SECRET_SIG in value:
            return _unwrap(value.get("value"))
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    return value


class RecordingMonitor(pulumi_mocks.MockMonitor):
    def __init__(self, mocks: WorkerMocks, run: Run, record: bool = True, slow: tuple[str, ...] = ()):
        super().__init__(mocks)
        self.run = run
        self.record = record  # False: count only (benchmarks measure the program, not this bookkeeping)
        self.slow = slow

    def RegisterResource(self, request: Any) -> Any:
        if request.name in self.slow:
            time.sleep(0.5)  # resources are recorded as they finish: what waited for this comes after
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack" and not self.record:
            self.run.resources.append(Registration(request.type, request.name, {}, {}, set(), request.parent))
            # The mock monitor keeps every resource's state for lookups the program never makes; the
            # engine keeps state in its own process, so a benchmark of the program does not count it.
            self.resources.pop(response.urn, None)
        elif request.type != "pulumi:pulumi:Stack":
            raw = json_format.MessageToDict(request.object)
            state = self.resources[response.urn].state
            self.run.resources.append(
                Registration(
                    type=request.type,
                    name=request.name,
                    inputs=_unwrap(raw),
                    outputs=_unwrap(dict(state)),
                    secret_inputs=set(_secret_paths(raw)),
                    parent=request.parent,
                    additional_secret_outputs=list(request.additionalSecretOutputs),
                    delete_before_replace=request.deleteBeforeReplace,
                    dependencies=list(request.dependencies),
                    retain_on_delete=bool(request.retainOnDelete),
                    ignore_changes=list(request.ignoreChanges),
                    id=response.id,
                    plain={"inputs": _plain(raw), "outputs": _plain(dict(state))},
                )
            )
        return response

    def RegisterResourceOutputs(self, request: Any) -> Any:
        if self.record:
            self.run.component_outputs[request.urn] = _unwrap(json_format.MessageToDict(request.outputs))
        return super().RegisterResourceOutputs(request)


def config_values(raw: dict[str, Any]) -> dict[str, str]:
    """Stack config as the engine hands it to the program: namespaced, JSON for objects."""
    return {f"k8s-workers:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}


def run_program(
    raw_config: dict[str, Any],
    preview: bool = False,
    record: bool = True,
    slow: tuple[str, ...] = (),
    stacks: dict[str, dict[str, Any]] | None = None,
) -> Run:
    """`slow`: resource names whose registration the mock engine takes a while to finish (as a
    real create does), so tests can see what waits for them. `stacks`: other stacks' outputs."""
    run = Run()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    settings.reset_options()
    mocks = WorkerMocks(preview, stacks)
    pulumi.runtime.set_mocks(
        mocks, project="k8s-workers", stack="test", preview=preview, monitor=RecordingMonitor(mocks, run, record, slow)
    )
    pulumi.runtime.set_all_config(config_values(raw_config))

    async def program() -> None:
        try:
            runpy.run_path(str(PROJECT_DIR / "__main__.py"), run_name="__main__")
        except Exception as exc:
            run.error = exc
        try:
            await pulumi.runtime.stack.wait_for_rpcs()
        except Exception as exc:  # a failed invoke is re-raised here too: the program's own error comes first
            run.error = run.error or exc
        root = pulumi.runtime.settings.get_root_resource()  # the Stack the mocks made: it holds the exports
        for key, value in (getattr(root, "outputs", None) or {}).items():
            run.stack_outputs[key] = await pulumi.Output.from_input(value).future()
            if await pulumi.Output.from_input(value).is_secret():
                run.secret_outputs.add(key)

    try:
        loop.run_until_complete(program())
    finally:
        loop.close()
        asyncio.set_event_loop(None)
    return run
