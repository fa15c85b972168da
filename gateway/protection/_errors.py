"""Errors of the protection layer.

```
ProtectionError          rule + message, never a value (no key bytes, no personal data)
 ├── KeyMaterialError    the key file / environment variable is unusable (refuse to start)
 └── DecryptionError     a sealed value cannot be opened: tampered, wrong key, wrong row
```

They are internal errors: the gateway's error middleware turns them into a generic 500 (a client
cannot fix a broken key ring), and the log line carries `rule`, which is safe to record.
"""

from __future__ import annotations

__all__ = ["DecryptionError", "KeyMaterialError", "ProtectionError"]


class ProtectionError(Exception):
    """Root of the protection errors; `rule` is a stable dotted code such as `kek.length`."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"{rule}: {message}")
        self.rule = rule
        self.message = message


class KeyMaterialError(ProtectionError):
    """Key material is missing, malformed or of the wrong size."""


class DecryptionError(ProtectionError):
    """A sealed value did not open.

    Deliberately one class for every cause (malformed, unknown key id, unwrap failure, failed
    authentication tag): a caller must treat all of them as "this row is not trustworthy".
    `rule` says which check failed, for the operator.
    """
