"""Spark jobs: source extraction, bronze and silver layers, event ingestion."""
