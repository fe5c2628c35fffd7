"""Developer tooling: local runner, fakes of AWS services, benchmark helpers. Not deployed."""
