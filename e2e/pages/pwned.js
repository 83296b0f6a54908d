window.__pwned = "an external script"
