"""Packaged data: the example questions file, reply templates and the crisis lexicon."""
