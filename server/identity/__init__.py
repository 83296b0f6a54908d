"""Known customers: per-site identity secrets and customer keys, identity tokens (JWT in, a signed
identity out), CRM attributes (import, types, derived values, resolution), erasure, and the
content a customer gets in an email."""
