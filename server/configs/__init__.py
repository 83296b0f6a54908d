"""Site configs from draft to signed bundle: validation (the JSON Schema under spec/schemas/, the
attribute registry spec/attributes.json, semantic rules) and the sanitising of merchant content,
the compiler, signing, publishing and rollback, and which version of a site is the latest."""
