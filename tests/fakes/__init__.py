"""Fakes of the providers we call: servers that speak their real protocols, for tests and development."""
