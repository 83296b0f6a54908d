# A package, so pytest puts the repository root on sys.path: `server` and `tests.servers` import.
