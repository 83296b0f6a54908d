"""Wire formats: the JSON Schemas published under spec/schemas/ (the collect batch, the decide
request, the names and ids they share) loaded once, validated against, and turned into the
regexes and bounds the server checks by hand where speed matters, so each format is defined in
one place that clients can read too."""
