"""What the schedulers and launchers promise a user, beyond tests/test_schedulers.py: each
batch directive of a request, the rank variables each launcher reads, and the registries."""

from __future__ import annotations
