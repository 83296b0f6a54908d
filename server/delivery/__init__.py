"""What shop pages load on every view: tag.js, the SDK file, bundle.json and the visitor's
server-resolved context (geo, device), answered from per-process memory."""
