"""Runs the Flask (WSGI) app for an ASGI request on a thread pool.

Our own ~60 lines rather than asgiref's WsgiToAsgi, which runs every request of a process on
one shared thread and spools any body, however large, before the app can refuse it. Here the
body is read only up to the app's largest accepted size (the app then answers 413 itself),
requests run concurrently on `threads` threads, and the (small, bounded) response is collected
in the thread and written from the event loop."""
import asyncio
import io
import sys
from concurrent.futures import ThreadPoolExecutor


class WSGIBridge:
    def __init__(self, wsgi_app, max_body, threads=8):
        """max_body: the largest body read, in bytes, or a function of the request path giving it."""
        self.wsgi_app = wsgi_app
        self.max_body = max_body if callable(max_body) else (lambda path: max_body)
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="vitrina-wsgi")

    async def __call__(self, scope, receive, send):
        environ = self._environ(scope)
        declared = environ.get("CONTENT_LENGTH")
        max_body = self.max_body(scope["path"])
        if declared and declared.isdigit() and int(declared) > max_body:
            body = b""  # not read at all: the app refuses it from CONTENT_LENGTH alone
        else:
            body = await self._read_body(receive, max_body)
        environ["wsgi.input"] = io.BytesIO(body)
        loop = asyncio.get_running_loop()
        status, headers, chunks = await loop.run_in_executor(self.pool, self._run, environ)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"".join(chunks)})

    async def _read_body(self, receive, max_body):
        parts, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b""  # the client went away
            chunk = message.get("body", b"")
            parts.append(chunk)
            size += len(chunk)
            if size > max_body or not message.get("more_body"):
                return b"".join(parts)  # past the limit: enough for the app to answer 413

    def _run(self, environ):
        started = {}

        def start_response(status, headers, exc_info=None):
            started["status"] = int(status.split(" ", 1)[0])
            started["headers"] = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]

        result = self.wsgi_app(environ, start_response)
        try:
            chunks = list(result)
        finally:
            close = getattr(result, "close", None)
            if close:
                close()
        return started["status"], started["headers"], chunks

    @staticmethod
    def _environ(scope):
        server = scope.get("server") or ("localhost", 80)
        client = scope.get("client")
        environ = {
            "REQUEST_METHOD": scope["method"],
            "SCRIPT_NAME": scope.get("root_path", "").encode("utf-8").decode("latin-1"),
            "PATH_INFO": scope["path"].encode("utf-8").decode("latin-1"),
            "QUERY_STRING": scope["query_string"].decode("latin-1"),
            "SERVER_NAME": str(server[0]),
            "SERVER_PORT": str(server[1] if server[1] is not None else 80),
            "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": scope.get("scheme", "http"),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,  # a body without Content-Length (chunked) is read to its end
        }
        if client:
            environ["REMOTE_ADDR"] = client[0]
        for name, value in scope["headers"]:
            key = name.decode("latin-1").upper().replace("-", "_")
            if key not in ("CONTENT_LENGTH", "CONTENT_TYPE"):
                key = "HTTP_" + key
            value = value.decode("latin-1")
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ
