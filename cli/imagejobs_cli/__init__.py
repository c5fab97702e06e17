"""The `imagejobs` command line: admin commands (keys, budgets) against a deployed or offline stack."""
