"""The k8s-workers policy pack; its rules are in k8s_workers_policies.py (tested in tests/test_policy_pack.py)."""

import sys
from pathlib import Path

# The pure checks live in the project's k8s_workers package, one folder up.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from k8s_workers_policies import pack

pack()
