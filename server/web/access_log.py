"""The access log: one fixed line per request, without the visitor's address,
  [23/Nov/2026:19:50:01 +0000] "GET /v1/sites/shop/tag.js HTTP/1.1" 200 7812 0ms
written by the ASGI app to gunicorn's access logger ("gunicorn.access", which `vitrina serve`
points at stdout). uvicorn's own access log is off: it prints the client's address. Nothing
identifying is written: a customer id in a path (`.../customers/<id>`) and the values of query
parameters that may identify someone (`token`, `email_sha256`, `customer_id`) are replaced by `-`."""
import logging
import re
import time

_CUSTOMER_PATH = re.compile(rb"(/customers/)[^/?]+")
_SECRET_PARAMETER = re.compile(rb"((?:^|[?&])(?:token|email_sha256|customer_id)=)[^&]*")
_IDENTIFYING = re.compile(rb"/customers/|token=|email_sha256=|customer_id=")


def redacted(target):
    """A request target (bytes) with customer ids and identifying query values replaced by `-`."""
    path, question, query = target.partition(b"?")
    path = _CUSTOMER_PATH.sub(rb"\1-", path)
    return path + question + _SECRET_PARAMETER.sub(rb"\1-", query)

LOGGER = "gunicorn.access"


class AccessLog:
    def __init__(self):
        self.logger = logging.getLogger(LOGGER)
        self._stamp_second = None
        self._stamp = ""

    def _now(self):
        second = int(time.time())
        if second != self._stamp_second:  # strftime once per second, not per request
            self._stamp_second, self._stamp = second, time.strftime("[%d/%b/%Y:%H:%M:%S %z]")
        return self._stamp

    def write(self, scope, status, sent, started):
        """One line for a finished request: its ASGI scope, status, body bytes sent, and
        time.monotonic() when it started."""
        if not self.logger.hasHandlers():
            return
        target = scope.get("raw_path") or scope["path"].encode()
        if scope["query_string"]:
            target += b"?" + scope["query_string"]
        if _IDENTIFYING.search(target):
            target = redacted(target)
        ms = int((time.monotonic() - started) * 1000)
        line = '%s "%s %s HTTP/%s" %s %s %dms' % (self._now(), scope["method"], target.decode("latin-1"),
                                                 scope["http_version"], status, sent, ms)
        handlers = self.logger.handlers
        if len(handlers) == 1 and type(handlers[0]) in (logging.StreamHandler, logging.FileHandler):
            # gunicorn's access handler formats "%(message)s": write the line as it would, without
            # a LogRecord per request (half of what logging costs here, measured).
            handler = handlers[0]
            handler.acquire()
            try:
                handler.stream.write(line + "\n")
                handler.flush()
            finally:
                handler.release()
        else:  # syslog, a logconfig file...: the regular path
            self.logger.info(line)
