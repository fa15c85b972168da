"""Directories: the federation's members (signed metadata, lead CAF contacts) in `members`;
the service directory (Open Referral UK records, access rules, eligibility, search) in `services`."""
