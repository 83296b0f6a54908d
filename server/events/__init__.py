"""Exposures and conversions coming in: batch validation, verification against the published
versions, rate limits, and the disk spool that keeps batches through a store outage."""
