"""Personalisation: test keys, certificates and card profiles for each scheme."""
