"""Rules every feature follows where data leaves the control plane: the egress policy (where it may
connect on a user's behalf) and the masking of credentials in URLs."""
