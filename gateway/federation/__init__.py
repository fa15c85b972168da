"""The London protocol between borough nodes (DESIGN 3, issue 6).

`transport/` knows HTTP, mutual TLS and RFC 9421 signatures; `attestation`, `practitioner`,
`outbox` and `holder` know the protocol; `operator/` is the federation operator's tooling.
"""
