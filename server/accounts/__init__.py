"""Who may do what on a site, and what they did: workspace users (emails, argon2 password hashes,
roles per site, one-time set-password links) and each site's audit log, written by the workspace,
the JSON API and the CLI alike."""
