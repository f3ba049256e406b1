"""Analyse: model summaries and ρ, correlation and entanglement, latency, classification
metrics."""
