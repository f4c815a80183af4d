"""Importable test helpers shared by test modules (browsers, ...)."""
