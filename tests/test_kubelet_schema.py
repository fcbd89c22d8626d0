"""`kubelet:` overrides against the generated KubeletConfiguration schema: a value of each type,
accepted and refused, with the path of what is wrong (pure)."""

from __future__ import annotations

import pytest

from k8s_workers.config.kubelet_schema import check_overrides


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"serializeImagePulls": False}, None),  # boolean
        ({"serializeImagePulls": "false"}, ("serializeImagePulls", "is not true or false, unquoted")),
        ({"registryBurst": 20}, None),  # integer
        ({"registryBurst": "20"}, ("registryBurst", "is not a whole number")),
        ({"registryBurst": True}, ("registryBurst", "is not a whole number")),  # YAML's yes is no number
        ({"memoryThrottlingFactor": 0.9}, None),  # number
        ({"memoryThrottlingFactor": "0.9"}, ("memoryThrottlingFactor", "is not a number")),
        ({"cgroupRoot": "/k8s"}, None),  # string
        ({"cgroupRoot": 5}, ("cgroupRoot", "is not a string")),
        ({"fileCheckFrequency": "1m30s"}, None),  # duration
        ({"fileCheckFrequency": "90"}, ("fileCheckFrequency", "is not a duration")),
        ({"evictionSoft": {"memory.available": "300Mi"}}, None),  # map of strings
        ({"evictionSoft": {"memory.available": 300}}, ("evictionSoft.memory.available", "is not a string")),
        ({"evictionSoft": ["memory.available"]}, ("evictionSoft", "is not a mapping")),
        ({"allowedUnsafeSysctls": ["net.core.somaxconn"]}, None),  # list of strings
        ({"allowedUnsafeSysctls": "net.core.somaxconn"}, ("allowedUnsafeSysctls", "is not a list")),
        ({"allowedUnsafeSysctls": [1]}, ("allowedUnsafeSysctls[0]", "is not a string")),
        ({"authentication": {"webhook": {"cacheTTL": "2m"}}}, None),  # nested object
        ({"authentication": {"webhook": {"cacheTTL": 120}}}, ("authentication.webhook.cacheTTL", "is not a duration")),
        (
            {"authentication": {"webhook": {"enabeld": True}}},
            ("authentication.webhook.enabeld", "did you mean 'enabled'"),
        ),
        ({"reservedMemory": [{"numaNode": 0, "limits": {"memory": "1Gi"}}]}, None),  # quantity
        (
            {"reservedMemory": [{"numaNode": 0, "limits": {"memory": "lots"}}]},
            ("reservedMemory[0].limits.memory", "is not a quantity"),
        ),
        ({"featureGates": {"SomeGate": True}}, None),  # map of booleans
        ({"featureGates": {"SomeGate": "on"}}, ("featureGates.SomeGate", "is not true or false")),
    ],
)
def test_each_type_is_checked_where_it_is_written(overrides, problem):
    problems, _ = check_overrides(overrides, 37)
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1, problems
        path, why = problems[0]
        assert path == problem[0] and problem[1] in why, problems


def test_a_field_only_a_newer_minor_has_is_named_with_the_minors_that_have_it():
    problems, _ = check_overrides({"defaultPodSysctls": {}}, 36)
    assert problems == [("defaultPodSysctls", "is not a KubeletConfiguration field in Kubernetes 1.36 (it is in 1.37)")]
    assert check_overrides({"defaultPodSysctls": {}}, 37) == ([], [])


def test_deprecated_fields_are_reported_apart():
    problems, deprecated = check_overrides({"streamingConnectionIdleTimeout": "4h"}, 37)
    assert problems == [] and deprecated == ["streamingConnectionIdleTimeout"]
