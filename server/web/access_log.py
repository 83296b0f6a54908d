"""gunicorn's access log, lean: one fixed line per request, without the visitor's address.

gunicorn's own access() builds a dict of ~30 atoms (every header, every environ entry) per
request to fill a configurable format; that cost as much as serving tag.js itself. Our format
is fixed:  [23/Nov/2026:19:50:01 +0000] "GET /v1/sites/shop/tag.js HTTP/1.1" 200 7812 0ms"""
import logging
import time

from gunicorn import glogging


class LeanLogger(glogging.Logger):
    _stamp_second = None
    _stamp = ""

    def now(self):
        second = int(time.time())
        if second != self._stamp_second:  # strftime once per second, not per request
            self._stamp_second, self._stamp = second, time.strftime("[%d/%b/%Y:%H:%M:%S %z]")
        return self._stamp

    def access(self, resp, req, environ, request_time):
        if not self.access_log_enabled:
            return
        status = resp.status
        if isinstance(status, str):
            status = status.split(None, 1)[0]
        sent = getattr(resp, "sent", None)
        ms = request_time.seconds * 1000 + request_time.microseconds // 1000
        line = '%s "%s %s %s" %s %s %dms' % (self.now(), environ.get("REQUEST_METHOD"), environ.get("RAW_URI"),
                                             environ.get("SERVER_PROTOCOL"), status, "-" if sent is None else sent, ms)
        handlers = self.access_log.handlers
        if len(handlers) == 1 and type(handlers[0]) in (logging.StreamHandler, logging.FileHandler):
            # gunicorn's access handler formats "%(message)s": write the line as that would,
            # without a LogRecord per request (half of what logging cost here).
            handler = handlers[0]
            handler.acquire()
            try:
                handler.stream.write(line + "\n")
                handler.flush()
            finally:
                handler.release()
        else:  # syslog, a logconfig file...: the regular path
            self.access_log.info(line)
