"""The merchant's catalogue and order history: product feeds (Google Merchant Center field names)
read as a stream from JSON, JSON lines or CSV/TSV, validated line by line with the JSON path of each
problem, and imported into the store; past orders imported as purchase signals for recommendations."""
