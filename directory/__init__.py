"""Federation member directory and the service directory (Open Referral UK). Arrives with issue 7."""
