"""The policies of the k8s-workers pack: thin adapters from pulumi-policy's arguments to the pure
rules in k8s_workers.policy. Each validate function is called by the engine during preview and up,
and directly by the unit tests with made-up resources."""

from __future__ import annotations

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from k8s_workers.policy import cis_kubelet
from k8s_workers.policy.rules import (
    REMOTE_COMMAND,
    WORKER_NODE,
    host_key_problem,
    is_bootstrap_token,
    secret_logging_problems,
    token_lifetime_problem,
)

DYNAMIC_RESOURCE = "pulumi-python:dynamic:Resource"
DEFAULT_MAX_TOKEN_TTL_HOURS = 24


def validate_host_keys(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for r in args.resources:
        if r.resource_type != REMOTE_COMMAND:
            continue
        parent = r.parent
        waived = bool(
            parent and parent.resource_type == WORKER_NODE and parent.props.get("insecureIgnoreHostKey") is True
        )
        if problem := host_key_problem(r.props, waived):
            report_violation(f"{r.name}: {problem}", r.urn)


def validate_secret_commands(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if not args.resource_type.startswith("command:"):
        return
    for problem in secret_logging_problems(args.props, args.opts.additional_secret_outputs or []):
        report_violation(f"{args.name}: {problem}")


def validate_token_expiry(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != DYNAMIC_RESOURCE or not is_bootstrap_token(args.props):
        return
    max_hours = args.get_config().get("maxTtlHours", DEFAULT_MAX_TOKEN_TTL_HOURS)
    if problem := token_lifetime_problem(args.props, max_hours):
        report_violation(problem)


def _kubelet_findings(args: StackValidationArgs, report_violation: ReportViolation, automated: bool) -> None:
    for r in args.resources:
        if r.resource_type != WORKER_NODE or r.props.get("kubeletConfiguration") is None:
            continue
        for finding in cis_kubelet.check(r.props["kubeletConfiguration"], r.props.get("kubeletArgs") or []):
            if finding.automated == automated:
                report_violation(f"node {r.name}: {finding}", r.urn)


def validate_kubelet_cis(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    _kubelet_findings(args, report_violation, automated=True)


def validate_kubelet_cis_manual(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    _kubelet_findings(args, report_violation, automated=False)


def policies() -> list:
    return [
        StackValidationPolicy(
            name="ssh-host-key-pinned",
            description="Every node's SSH connection pins its host key, unless the node waives it explicitly.",
            validate=validate_host_keys,
            enforcement_level=EnforcementLevel.MANDATORY,
        ),
        ResourceValidationPolicy(
            name="secret-commands-log-nothing",
            description="A command that carries secrets on stdin or in its environment shows none of its output.",
            validate=validate_secret_commands,
            enforcement_level=EnforcementLevel.MANDATORY,
        ),
        ResourceValidationPolicy(
            name="bootstrap-token-expiry",
            description="Every node's bootstrap token expires within the bound (maxTtlHours, default 24).",
            validate=validate_token_expiry,
            enforcement_level=EnforcementLevel.MANDATORY,
            config_schema=PolicyConfigSchema(
                properties={"maxTtlHours": {"type": "number", "minimum": 1, "default": DEFAULT_MAX_TOKEN_TTL_HOURS}}
            ),
        ),
        StackValidationPolicy(
            name="kubelet-cis-4-2",
            description="Every node's kubelet meets the CIS Kubernetes Benchmark section 4.2 items its defaults meet.",
            validate=validate_kubelet_cis,
            enforcement_level=EnforcementLevel.MANDATORY,
        ),
        StackValidationPolicy(
            name="kubelet-cis-4-2-manual",
            description="CIS 4.2 manual items (hostname override, self-signed serving certificate, seccomp default): shown to the reviewer.",
            validate=validate_kubelet_cis_manual,
            enforcement_level=EnforcementLevel.ADVISORY,
        ),
    ]


def pack() -> PolicyPack:
    return PolicyPack(name="k8s-workers", policies=policies(), enforcement_level=EnforcementLevel.MANDATORY)
