"""The borough node: federation gateway, API, console and the `cafx` command line."""
