"""Adaptive allocation: per-slice variation weights recomputed from the counters by Thompson
sampling and published as a revision of the latest version (docs/DESIGN.md "Adaptive allocation")."""
