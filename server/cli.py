"""The `vitrina` command: serve, worker, sites, publish, results, catalog, orders, recs, demo."""
import argparse
import json
import os
import subprocess
import sys

from server.settings import ConfigError, load_config


def _app():
    from server import create_app
    return create_app()


def cmd_serve(args):
    from server.web.gunicorn_app import run
    worker = None
    if not args.no_worker:
        # One background worker beside gunicorn (never inside request workers): it exits with us.
        worker = subprocess.Popen([sys.executable, "-m", "server.cli", "worker", "--parent", str(os.getpid())])
    try:
        run(args.host, args.port, args.workers)
    finally:
        if worker is not None:
            worker.terminate()
            try:
                worker.wait(10)
            except subprocess.TimeoutExpired:
                worker.kill()


def cmd_worker(args):
    from server.recs.worker import run
    run(_app(), once=args.once, parent_pid=args.parent)
    return 0


def _progress_bar(**options):
    from tqdm import tqdm
    return tqdm(file=sys.stderr, dynamic_ncols=True, **options)


class _CountingReader:
    """A binary file that moves a progress bar by the bytes read."""

    def __init__(self, file, bar):
        self.file, self.bar = file, bar

    def read(self, size=-1):
        data = self.file.read(size)
        self.bar.update(len(data))
        return data

    def readline(self, size=-1):
        data = self.file.readline(size)
        self.bar.update(len(data))
        return data


def _import_file(args, what, run_import):
    from server.catalog import feed
    from server.store import get_store
    try:
        media = feed.media_type_for_path(args.file) if args.format is None else FORMATS[args.format]
    except feed.UnsupportedMediaType as e:
        return _fail(str(e))
    if not os.path.isfile(args.file):
        return _fail(f"no such file {args.file!r}")
    with _app().app_context():
        store = get_store()
        if not store.site_exists(args.site):
            return _fail(f"no site {args.site!r}")
        with open(args.file, "rb") as f, _progress_bar(total=os.path.getsize(args.file), unit="B", unit_scale=True,
                                                       desc=what) as bar:
            answer = run_import(store, feed.records(_CountingReader(f, bar), media))
    errors = answer.pop("errors")
    print(json.dumps(answer))
    for error in errors:
        print(f"{args.file}:{error['line']}: {error['path'] or '/'}: {error['message']}", file=sys.stderr)
    return 1 if errors else 0


FORMATS = {"json": "application/json", "jsonl": "application/x-ndjson", "csv": "text/csv",
           "tsv": "text/tab-separated-values"}


def cmd_catalog_import(args):
    from server.catalog.importer import import_products
    return _import_file(args, "catalogue", lambda store, lines: import_products(store, args.site, lines,
                                                                                replace=not args.patch))


def cmd_orders_import(args):
    from server.catalog.importer import import_orders
    return _import_file(args, "orders", lambda store, lines: import_orders(store, args.site, lines))


def cmd_recs_build(args):
    from server.recs.build import STAGES
    from server.recs.worker import build_with_lock, owner_name
    from server.store import get_store
    with _app().app_context():
        store = get_store()
        if not store.site_exists(args.site):
            return _fail(f"no site {args.site!r}")
        with _progress_bar(total=len(STAGES), desc="recommendations", unit="step") as bar:
            def progress(stage):
                bar.set_postfix_str(stage)
                bar.update(1)
            summary = build_with_lock(store, args.site, owner_name(), progress=progress)
    if summary is None:
        return _fail(f"another process is building {args.site!r} right now (lock recs:{args.site})")
    print(json.dumps(summary))
    return 0


def cmd_sites_create(args):
    from server.store import SiteExists, get_store
    from server.web.auth import hash_key, new_api_key
    from server.web.public import SITE_RE
    if not SITE_RE.match(args.site):
        return _fail(f"site name {args.site!r}: use 1-63 lowercase letters, digits or '-', starting with a letter or digit")
    key = new_api_key()
    with _app().app_context():
        try:
            get_store().create_site(args.site, hash_key(key))
        except SiteExists:
            return _fail(f"site {args.site!r} already exists")
    print(f"Created site {args.site!r}. Its API key is shown once; only its hash is stored:")
    print(key)
    return 0


def cmd_sites_list(args):
    from server.store import get_store
    with _app().app_context():
        for site in get_store().list_sites():
            print(site)
    return 0


def cmd_publish(args):
    from server.configs.publishing import publish_file
    with _app().app_context():
        ok, result = publish_file(args.site, args.config)
    if not ok:
        print(f"{args.config}: the config is invalid; nothing was published:", file=sys.stderr)
        for problem in result:
            print(f"  {problem['path'] or '/'}: {problem['message']}", file=sys.stderr)
        return 1
    print(f"Published {args.site} version {result}")
    return 0


def cmd_results(args):
    from server.results.report import site_results
    from server.results.table import render
    from server.store import get_store
    with _app().app_context():
        if not get_store().site_exists(args.site):
            return _fail(f"no site {args.site!r}")
        data = site_results(args.site)
    print(json.dumps(data, indent=2) if args.json else render(data))
    return 0


def cmd_demo(args):
    from server.demo import run_demo
    run_demo(args.host, args.port, args.shop_port)


def _fail(message):
    print(f"vitrina: {message}", file=sys.stderr)
    return 2


def build_parser():
    parser = argparse.ArgumentParser(prog="vitrina", description="Vitrina personalization server")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the server under gunicorn")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=min(4, 2 * (os.cpu_count() or 1)))
    serve.add_argument("--no-worker", action="store_true", help="do not start the background worker beside it")
    serve.set_defaults(func=cmd_serve)
    worker = sub.add_parser("worker", help="run background jobs (recommendation builds); `serve` starts one")
    worker.add_argument("--once", action="store_true", help="one pass over the sites, then exit")
    worker.add_argument("--parent", type=int, help=argparse.SUPPRESS)
    worker.set_defaults(func=cmd_worker)
    sites = sub.add_parser("sites", help="manage sites").add_subparsers(dest="sites_command", required=True)
    create = sites.add_parser("create", help="create a site and print its API key")
    create.add_argument("site")
    create.set_defaults(func=cmd_sites_create)
    sites.add_parser("list", help="list sites").set_defaults(func=cmd_sites_list)
    publish = sub.add_parser("publish", help="validate, save and publish a config file")
    publish.add_argument("site")
    publish.add_argument("config")
    publish.set_defaults(func=cmd_publish)
    results = sub.add_parser("results", help="print a site's results")
    results.add_argument("site")
    results.add_argument("--json", action="store_true", help="print the JSON of GET .../results")
    results.set_defaults(func=cmd_results)
    for name, func, what in (("catalog", cmd_catalog_import, "a product feed"),
                             ("orders", cmd_orders_import, "an order history (JSON lines)")):
        group = sub.add_parser(name, help=f"import {what}").add_subparsers(dest=f"{name}_command", required=True)
        command = group.add_parser("import", help=f"import {what} from a file, with a progress bar")
        command.add_argument("site")
        command.add_argument("file")
        command.add_argument("--format", choices=sorted(FORMATS), help="default: from the file name")
        if name == "catalog":
            command.add_argument("--patch", action="store_true", help="upsert/delete some products (default: replace all)")
        command.set_defaults(func=func)
    recs = sub.add_parser("recs", help="recommendations").add_subparsers(dest="recs_command", required=True)
    build = recs.add_parser("build", help="rebuild a site's recommendations now, with a progress bar")
    build.add_argument("site")
    build.set_defaults(func=cmd_recs_build)
    demo = sub.add_parser("demo", help="server + demo shop + sample config")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--shop-port", type=int, default=8001)
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        load_config()
    except ConfigError as e:
        return _fail(f"configuration error: {e}")
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
