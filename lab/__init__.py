"""A lab of real systemd hosts on this machine: Debian roots booted with systemd-nspawn.

`python -m lab up --nodes N | status | down`. Hosts listen for SSH only on their own
loopback address 127.0.0.N (N >= 2); the lab and its tests connect nowhere else.
"""
