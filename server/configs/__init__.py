"""Site configs from draft to signed bundle: the JSON Schema and semantic validation, the compiler,
signing, publishing and rollback, and which version of a site is the latest."""
