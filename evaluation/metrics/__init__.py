"""Metrics over recorded case outcomes: pure functions, so anyone can recompute them from
`results.json`. Models (an embedder, a judge) are passed in, never loaded here."""
