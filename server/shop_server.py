"""A tiny static 'shop' on its own origin, with the tag URL filled into its pages.
Used by `vitrina demo` and by the e2e tests."""
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def make_shop_server(host, port, pages_dir, vitrina_origin, site):
    pages_dir = Path(pages_dir)

    class ShopHandler(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(pages_dir), **kwargs)

        def do_GET(self):
            path = self.path.split("?", 1)[0].split("#", 1)[0]
            name = "index.html" if path in ("", "/") else path.lstrip("/")
            page = pages_dir / name
            if page.suffix != ".html" or not page.is_file() or pages_dir not in page.resolve().parents:
                return super().do_GET()
            body = page.read_text().replace("{{VITRINA}}", vitrina_origin).replace("{{SITE}}", site).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return ThreadingHTTPServer((host, port), ShopHandler)


def serve_in_thread(server):
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread
