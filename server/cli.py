"""The `vitrina` command: serve, worker, sites, keys, users, publish, results, sample-size, catalog,
orders, customers, recs, demo."""
import argparse
import json
import os
import subprocess
import sys

from server.accounts import audit
from server.settings import ConfigError, load_config
from server.store.base import SLICE_DIMENSIONS


def _app():
    from server import create_app
    return create_app()


def cmd_serve(args):
    from server.store import describe
    from server.web.gunicorn_app import run
    print(f"Vitrina on http://{args.host}:{args.port}/ with {args.workers} worker(s); store: "
          f"{describe(load_config())}", flush=True)
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
        media = args.media = feed.media_type_for_path(args.file) if args.format is None else FORMATS[args.format]
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
            lines = feed.records(_CountingReader(f, bar), media, getattr(args, "id_columns", ("id",)))
            answer = run_import(store, lines)
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


def cmd_customers_import(args):
    from server.catalog import feed
    from server.identity.customers import ID_FIELDS, import_customers

    def run(store, lines):
        return import_customers(store, args.site, lines, replace=not args.patch, typed_cells=args.media in feed.CSV_TYPES)
    args.id_columns = ID_FIELDS
    return _import_file(args, "customers", run)


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


def cmd_models_train(args):
    from server.predict.jobs import STAGES, goals_to_train, lock_name, train_with_lock
    from server.recs.worker import owner_name
    from server.store import get_store
    with _app().app_context():
        store = get_store()
        if not store.site_exists(args.site):
            return _fail(f"no site {args.site!r}")
        goals = args.goal or goals_to_train(args.site)
        if not goals:
            return _fail(f"site {args.site!r}: no published condition reads predict.<goal>; name goals with --goal")
        with _progress_bar(total=len(STAGES) * len(goals), desc="models", unit="step") as bar:
            def progress(stage):
                bar.set_postfix_str(stage)
                bar.update(1)
            summary = train_with_lock(store, args.site, owner_name(), goals, progress)
    if summary is None:
        return _fail(f"another process is training {args.site!r} right now (lock {lock_name(args.site)})")
    for goal, report in summary["goals"].items():
        auc = "-" if report["auc"] is None else report["auc"]
        print(f"{goal}: {report['status']} (held-out AUC {auc}, floor {report['floor']}; "
              f"{report['examples']} examples, {report['positives']} converted)")
    print(f"revision: {summary['revision'] or 'unchanged'}")
    return 0


def cmd_models_report(args):
    from server.predict.models import reports
    from server.store import get_store
    with _app().app_context():
        if not get_store().site_exists(args.site):
            return _fail(f"no site {args.site!r}")
        found = reports(args.site)
    if args.json:
        print(json.dumps(found, indent=1))
        return 0
    if not found:
        print(f"{args.site}: no model trained yet (vitrina models train {args.site})")
    for goal, report in found.items():
        print(_model_report_text(goal, report))
    return 0


def _model_report_text(goal, report):
    auc = "-" if report["auc"] is None else f"{report['auc']:.3f}"
    lines = [f"predict.{goal}: {report['status']}, held-out AUC {auc} (published above {report['floor']})",
             f"  trained {report['trained_at']} on {report['examples']} examples ({report['positives']} converted), "
             f"{report['held_out']} held out; regularisation C={report.get('regularisation', '-')}",
             f"  shipping: {'the model trained ' + report['model_from'] if report.get('model') else 'no model'}"]
    if report["calibration"]:
        lines.append("  calibration (held out, 10 bins by predicted probability): predicted -> observed (n)")
        lines += [f"    {b['predicted']:.4f} -> {b['observed']:.4f} ({b['n']})" for b in report["calibration"]]
    if report["top"]:
        lines.append("  top features: weight per unit (per standard deviation)")
        lines += [f"    {t['feature']:<28} {t['weight']:+.4f} ({t['standardised']:+.4f})" for t in report["top"]]
    return "\n".join(lines)


def cmd_allocate(args):
    from server.recs.worker import (
        PERIODIC_JOBS,
        LockHeld,
        owner_name,
        run_job_with_lock,
    )
    from server.store import get_store
    job = next(j for j in PERIODIC_JOBS if j.name == "allocate")
    forced = type(job)(job.name, lambda app, site: True, job.run, job.line)  # now, due or not
    app = _app()
    with app.app_context():
        store = get_store()
        if not store.site_exists(args.site):
            return _fail(f"no site {args.site!r}")
        try:
            summary = run_job_with_lock(app, store, forced, args.site, owner_name())
        except LockHeld:
            return _fail(f"another process is allocating {args.site!r} right now (lock allocate:{args.site})")
    if summary is None:
        return _fail(f"the latest version of {args.site!r} has no adaptive campaign")
    print(json.dumps(summary))
    return 0


def cmd_sites_create(args):
    from server.store import SiteExists, get_store
    from server.web.auth import hash_key, new_api_key
    from server.wire.ids import SITE_RE
    if not SITE_RE.match(args.site):
        return _fail(f"site name {args.site!r}: use 1 to 63 lowercase letters, digits or '-', starting with a letter "
                     "or digit")
    key = new_api_key()
    with _app().app_context():
        try:
            get_store().create_site(args.site, hash_key(key))
        except SiteExists:
            return _fail(f"site {args.site!r} already exists")
    print(f"Created site {args.site!r}. Its owner key 'default' is shown once; only its hash is stored:")
    print(key)
    return 0


def cmd_sites_identity_secret(args):
    from server.identity.site_secrets import ROTATION_GRACE_S, current_secret
    from server.store import get_store
    from server.web.keys import iso_time
    with _app().app_context():
        if not get_store().site_exists(args.site):
            return _fail(f"no site {args.site!r}")
        secret, previous_until = current_secret(args.site, rotate=args.rotate)
    if args.rotate:
        print(f"Rotated the identity secret of site {args.site!r}. Tokens signed with the previous one verify "
              f"until {iso_time(previous_until) if previous_until else 'now only'} ({ROTATION_GRACE_S // 3600} h); "
              "rotating again drops it at once. The new secret (HS256; keep it on your servers, never in a page):")
    else:
        print(f"Identity secret of site {args.site!r}: sign identity tokens with it (HS256) on your servers; "
              "never put it in a page:")
    print(secret)
    return 0


def cmd_keys_list(args):
    from server.store import get_store
    from server.web.keys import iso_time
    with _app().app_context():
        store = get_store()
        if not store.site_exists(args.site):
            return _fail(f"no site {args.site!r}")
        rows = [(k.name, k.scope, iso_time(k.created_at), iso_time(k.last_used_at) or "never")
                for k in store.list_keys(args.site)]
    rows.insert(0, ("NAME", "SCOPE", "CREATED", "LAST USED"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3])
    return 0


def cmd_keys_create(args):
    from server.store import KeyExists, get_store
    from server.web.auth import create_key, key_problems
    problems = key_problems(args.name, args.scope)
    if problems:
        return _fail(f"key name {args.name!r}: {problems[0]['message']}")
    with _app().app_context():
        if not get_store().site_exists(args.site):
            return _fail(f"no site {args.site!r}")
        try:
            key = create_key(args.site, args.name, args.scope)
        except KeyExists:
            return _fail(f"site {args.site!r} already has a key named {args.name!r}")
        audit.record(args.site, "key.create", f"created API key '{args.name}' (scope {args.scope})",
                     {"name": args.name, "scope": args.scope})
    print(f"Created key {args.name!r} (scope {args.scope}) of site {args.site!r}. It is shown once; "
          "only its hash is stored:")
    print(key)
    return 0


def cmd_keys_revoke(args):
    from server.store import get_store
    with _app().app_context():
        store = get_store()
        if not store.site_exists(args.site):
            return _fail(f"no site {args.site!r}")
        if not store.revoke_key(args.site, args.name):
            return _fail(f"site {args.site!r} has no key named {args.name!r}")
        audit.record(args.site, "key.revoke", f"revoked API key '{args.name}'", {"name": args.name})
    print(f"Revoked key {args.name!r} of site {args.site!r}: it opens nothing from now on.")
    return 0


def cmd_users_create(args):
    from server.accounts.users import ROLES, ensure_user, link_url, normal_email
    from server.store import get_store
    email = normal_email(args.email)
    if email is None:
        return _fail(f"{args.email!r} is not an email address")
    if args.role not in ROLES:
        return _fail(f"role {args.role!r}: use one of {', '.join(ROLES)}")
    with _app().app_context():
        store = get_store()
        if not store.site_exists(args.site):
            return _fail(f"no site {args.site!r}")
        created = ensure_user(email)
        store.set_role(args.site, email, args.role)
        audit.record(args.site, "user.invite", f"gave {email} the role {args.role}", {"email": email, "role": args.role})
        link = link_url(email)
    print(f"{'Created user' if created else 'User'} {email}, {args.role} of {args.site!r}. This one-time link lets "
          f"them set a password (it works once, for 3 days):")
    print(link)
    return 0


def cmd_sites_list(args):
    from server.store import get_store
    with _app().app_context():
        for site in get_store().list_sites():
            print(site)
    return 0


def cmd_publish(args):
    from server.configs.publishing import PublishFileError, publish_file
    with _app().app_context():
        try:
            result = publish_file(args.site, args.config)
        except PublishFileError as e:
            return _fail(str(e))
    if result.problems:
        count = len(result.problems)
        print(f"{args.config}: {count} problem{'s' if count > 1 else ''}; nothing was published:", file=sys.stderr)
        _print_problems(result.problems)
        return 1
    if result.warnings:
        print(f"{args.config}: sanitised; what was removed:", file=sys.stderr)
        _print_problems(result.warnings)
    with _app().app_context():
        audit.record(args.site, "publish", f"published version {result.version} from {os.path.basename(args.config)}",
                     {"version": result.version})
    print(f"Published {args.site} version {result.version}")
    return 0


def _print_problems(problems):
    for problem in problems:
        print(f"  {problem['path'] or '/'}: {problem['message']}", file=sys.stderr)


def cmd_results(args):
    from server.results.report import site_results
    from server.results.table import render
    from server.store import get_store
    with _app().app_context():
        if not get_store().site_exists(args.site):
            return _fail(f"no site {args.site!r}")
        data = site_results(args.site, all_goals=args.all_goals, breakdown=args.breakdown)
    print(json.dumps(data, indent=2) if args.json else render(data))
    return 0


def cmd_sample_size(args):
    from server.results import sample_size as planning
    values = {name: getattr(args, name) for name in planning.PARAMETERS}
    problems = planning.problems(values)
    if problems:
        return _fail("; ".join(f"--{p['path'][1:]} {p['message']}" for p in problems))
    plan = planning.sample_size(**planning.parse(values))
    if args.json:
        print(json.dumps(plan, indent=2))
        return 0
    print(f"Baseline rate {plan['baseline']:.2%}, detecting {plan['mde']:+.1%} (to {plan['expected_rate']:.2%}), "
          f"alpha {plan['alpha']}, power {plan['power']:.0%}, {plan['variations']} variations, control included")
    fixed, sequential = plan["fixed"], plan["sequential"]
    print(f"  fixed mode:      {fixed['visitors_per_variation']:>12,} visitors per variation, "
          f"{fixed['visitors']:,} in all; read the results once, when they are reached")
    if sequential:
        print(f"  sequential mode: {sequential['visitors_per_variation']:>12,} visitors per variation, "
              f"{sequential['visitors']:,} in all; look any day, it may stop sooner")
    return 0


def cmd_demo(args):
    from server.demo import run_demo
    run_demo(args.host, args.port, args.shop_port)


def _fail(message):
    print(f"vitrina: {message}", file=sys.stderr)
    return 2


def build_parser():
    parser = argparse.ArgumentParser(
        prog="vitrina", description="Vitrina personalization server. Settings come from VITRINA_* environment "
        "variables (README.md \"Settings\"); the default database is $XDG_DATA_HOME/vitrina/vitrina.sqlite3 "
        "(~/.local/share/vitrina/vitrina.sqlite3), whatever the current folder.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                help="what to do (each command has its own --help)")
    serve = sub.add_parser("serve", help="run the server under gunicorn",
                           description="Run the server under gunicorn, after printing the store it uses "
                           "(the SQLite file, or the Redis URL without its password).")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s; "
                       "0.0.0.0 for every interface)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (default: %(default)s)")
    serve.add_argument("--workers", type=int, default=min(4, 2 * (os.cpu_count() or 1)),
                       help="worker processes (default: twice the CPU count, at most 4: %(default)s here)")
    serve.add_argument("--no-worker", action="store_true",
                       help="do not start the one background worker (recommendation builds) beside it")
    serve.set_defaults(func=cmd_serve)
    worker = sub.add_parser("worker", help="run background jobs (recommendation builds); `serve` starts one",
                            description="Run the background jobs (recommendation builds) in this process, one store "
                            "lock per job so one node runs each. `vitrina serve` starts one beside gunicorn.")
    worker.add_argument("--once", action="store_true", help="one pass over the sites, then exit")
    worker.add_argument("--parent", type=int, help=argparse.SUPPRESS)
    worker.set_defaults(func=cmd_worker)
    sites = sub.add_parser("sites", help="create and list sites, print their identity secrets",
                           description="Create and list sites; print a site's identity secret.")
    sites_sub = sites.add_subparsers(dest="sites_command", required=True, metavar="COMMAND",
                                     help="what to do with sites")
    create = sites_sub.add_parser("create", help="create a site and print its API key",
                                  description="Create a site and print its first API key, once, alone on the last "
                                  "line (only its hash is stored).")
    create.add_argument("site", help="site name: 1 to 63 lowercase letters, digits or '-', starting with a letter "
                        "or digit")
    create.set_defaults(func=cmd_sites_create)
    sites_sub.add_parser("list", help="list sites, one a line",
                         description="List every site, one a line.").set_defaults(func=cmd_sites_list)
    secret = sites_sub.add_parser("identity-secret", help="print the site's identity secret, alone on the last line",
                                  description="Print the secret the shop's servers sign identity tokens with (JWT, "
                                  "HS256), alone on the last line; made on first use. docs/reference/identity.md.")
    secret.add_argument("site", help="the site whose identity secret to print")
    secret.add_argument("--rotate", action="store_true",
                        help="make a new secret; the previous one keeps verifying for 24 hours")
    secret.set_defaults(func=cmd_sites_identity_secret)
    users = sub.add_parser("users", help="workspace users", description="Workspace users (the web app at /app/).")
    users = users.add_subparsers(dest="users_command", required=True, metavar="COMMAND", help="what to do with users")
    users_create = users.add_parser("create", help="give a user a role on a site and print a one-time sign-in link",
                                    description="Create the user if needed, give them a role on the site and print "
                                    "a one-time link to set a password, alone on the last line (absolute when "
                                    "VITRINA_PUBLIC_URL is set, else a path).")
    users_create.add_argument("email", help="the user's email address (their sign-in name)")
    users_create.add_argument("--site", required=True, help="the site they work on")
    users_create.add_argument("--role", required=True, choices=["owner", "editor", "viewer"],
                              help="owner: everything, users and keys included; editor: edit, publish, roll back; "
                              "viewer: read")
    users_create.set_defaults(func=cmd_users_create)
    publish = sub.add_parser("publish", help="validate, save and publish a config file",
                             description="Validate a config file, save it as the site's draft and publish it as a "
                             "new version. An invalid file publishes nothing and lists every problem with its JSON "
                             "path (exit status 1).")
    publish.add_argument("site", help="the site to publish to")
    publish.add_argument("config", help="path of the config JSON file")
    keys = sub.add_parser("keys", help="manage a site's API keys",
                          description="List, create and revoke a site's API keys (each with a name and a scope).")
    keys = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND", help="what to do with keys")
    keys_list = keys.add_parser("list", help="names, scopes, creation and last use of a site's keys (never a secret)",
                                description="List a site's keys: name, scope, when created, when last used. Never a secret.")
    keys_list.add_argument("site", help="the site whose keys to list")
    keys_list.set_defaults(func=cmd_keys_list)
    keys_create = keys.add_parser("create", help="create a key and print it once, alone on its last line",
                                  description="Create a key with a name and a scope and print it once, alone on the "
                                  "last line (only its hash is stored).")
    keys_create.add_argument("site", help="the site the key opens")
    keys_create.add_argument("--name", required=True, help="a name for the key, unique in the site (e.g. ci, dashboard)")
    keys_create.add_argument("--scope", required=True, choices=["owner", "publish", "read"],
                             help="owner: everything, keys included; publish: edit, publish, roll back; read: GET and decide")
    keys_create.set_defaults(func=cmd_keys_create)
    keys_revoke = keys.add_parser("revoke", help="revoke a key, at once on every server",
                                  description="Revoke a key by name: from the next request on, on every server, it "
                                  "gets 401.")
    keys_revoke.add_argument("site", help="the site the key opens")
    keys_revoke.add_argument("name", help="the key's name (see 'vitrina keys list')")
    keys_revoke.set_defaults(func=cmd_keys_revoke)
    publish.set_defaults(func=cmd_publish)
    results = sub.add_parser("results", help="print a site's results",
                             description="Print a site's results as a table: per campaign and goal, each arm's visitors, "
                             "conversions and rates, and each variation against control and the holdout: uplift, "
                             "interval, p-values, chance to win.")
    results.add_argument("site", help="the site whose results to print")
    results.add_argument("--json", action="store_true", help="print the JSON of GET .../results instead of a table")
    results.add_argument("--breakdown", choices=SLICE_DIMENSIONS,
                         help="also show each campaign per slice of this dimension, with each slice's winner and "
                              "the best-per-slice summary")
    results.add_argument("--all-goals", action="store_true",
                         help="every goal counted for a campaign, not only those it lists (?goals=all)")
    results.set_defaults(func=cmd_results)
    size = sub.add_parser("sample-size", help="visitors an experiment on a conversion rate needs",
                          description="Visitors an experiment needs to detect a relative change of a conversion "
                          "rate, in fixed mode (read once) and in sequential mode (look any day); the same as "
                          "GET /api/v1/sites/<site>/sample-size.")
    size.add_argument("--baseline", required=True, help="the control's conversion rate, e.g. 0.03")
    size.add_argument("--mde", required=True, help="the smallest relative change to detect, e.g. 0.1 for +10%%")
    size.add_argument("--alpha", default="0.05", help="significance level (default: %(default)s)")
    size.add_argument("--power", default="0.8", help="chance to detect the change when it is there "
                      "(default: %(default)s)")
    size.add_argument("--variations", default="2", help="arms, control included (default: %(default)s)")
    size.add_argument("--json", action="store_true", help="print the JSON of GET .../sample-size")
    size.set_defaults(func=cmd_sample_size)
    for name, func, what in (("catalog", cmd_catalog_import, "a product feed"),
                             ("orders", cmd_orders_import, "an order history (JSON lines)"),
                             ("customers", cmd_customers_import, "CRM data (customer attributes)")):
        group = sub.add_parser(name, help=f"import {what}", description=f"Import {what} into a site.")
        group = group.add_subparsers(dest=f"{name}_command", required=True, metavar="COMMAND", help="what to do")
        command = group.add_parser("import", help=f"import {what} from a file, with a progress bar",
                                   description=f"Import {what} from a file, with a progress bar; bad lines are "
                                   "listed with their line number and JSON path, good ones are stored.")
        command.add_argument("site", help="the site to import into")
        command.add_argument("file", help="the file to read (.json, .jsonl, .csv or .tsv)")
        command.add_argument("--format", choices=sorted(FORMATS), help="the file's format (default: from its name)")
        if name == "catalog":
            command.add_argument("--patch", action="store_true",
                                 help="upsert or delete some products (default: replace the whole catalogue)")
        if name == "customers":
            command.add_argument("--patch", action="store_true",
                                 help="merge these attributes into the stored ones (default: the file holds every "
                                 "customer; the others' attributes are removed)")
        command.set_defaults(func=func)
    recs = sub.add_parser("recs", help="recommendations", description="Recommendations of a site.")
    recs = recs.add_subparsers(dest="recs_command", required=True, metavar="COMMAND", help="what to do")
    build = recs.add_parser("build", help="rebuild a site's recommendations now, with a progress bar",
                            description="Rebuild a site's recommendations now (under the store lock recs:<site>), "
                            "with a progress bar.")
    build.add_argument("site", help="the site whose recommendations to build")
    build.set_defaults(func=cmd_recs_build)
    models = sub.add_parser("models", help="conversion-probability models (predict.<goal>)",
                            description="The models of \"converts within this session\" that predict.<goal> "
                            "conditions use (docs/reference/predict.md).")
    models = models.add_subparsers(dest="models_command", required=True, metavar="COMMAND", help="what to do")
    models_train = models.add_parser("train", help="train a site's models now and ship those above the floor, with a "
                                     "progress bar", description="Train a site's models now (under the store lock "
                                     "models:<site>), store each goal's report, and ship the models whose held-out "
                                     "AUC is above the floor in the site's revision.")
    models_train.add_argument("site", help="the site whose models to train")
    models_train.add_argument("--goal", action="append", metavar="GOAL",
                              help="a goal to train (repeatable; default: the goals the published version reads as "
                              "predict.<goal>, and any trained before)")
    models_train.set_defaults(func=cmd_models_train)
    models_report = models.add_parser("report", help="print each goal's model report: AUC, calibration, top features",
                                      description="Print each goal's newest model report: status, held-out AUC, "
                                      "calibration (reliability curve), top features and their weights, training "
                                      "size and date.")
    models_report.add_argument("site", help="the site whose model reports to print")
    models_report.add_argument("--json", action="store_true", help="print the reports as JSON (the API's shape)")
    models_report.set_defaults(func=cmd_models_report)
    allocate = sub.add_parser("allocate", help="recompute adaptive campaigns' weights now and publish them as a revision",
                              description="Recompute the weights of the latest version's adaptive campaigns from the "
                              "results (Thompson sampling per slice) and publish them as a signed revision of that "
                              "version, now (under the store lock allocate:<site>). The worker does it every "
                              "VITRINA_ALLOCATE_EVERY_S.")
    allocate.add_argument("site", help="the site whose adaptive campaigns to allocate")
    allocate.set_defaults(func=cmd_allocate)
    demo = sub.add_parser("demo", help="server + demo shop + sample config",
                          description="Create the site 'demo', publish the sample config and run the server with a "
                          "demo shop on its own origin. ./scripts/demo.sh passes its options here, e.g. "
                          "./scripts/demo.sh --port 9000 --shop-port 9001.")
    demo.add_argument("--host", default="127.0.0.1", help="address of the server and the shop (default: %(default)s)")
    demo.add_argument("--port", type=int, default=8000, help="the server's port (default: %(default)s)")
    demo.add_argument("--shop-port", type=int, default=8001, help="the demo shop's port (default: %(default)s)")
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
