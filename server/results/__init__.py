"""What the counters mean: results per campaign and variation, their statistics, and the CLI's
text table."""
