"""The `vitrina` command: serve, sites, publish, results, sample-size, demo."""
import argparse
import json
import os
import sys

from server.settings import ConfigError, load_config


def _app():
    from server import create_app
    return create_app()


def cmd_serve(args):
    from server.web.gunicorn_app import run
    run(args.host, args.port, args.workers)


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
        data = site_results(args.site, all_goals=args.all_goals)
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
    parser = argparse.ArgumentParser(prog="vitrina", description="Vitrina personalization server")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the server under gunicorn")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=min(4, 2 * (os.cpu_count() or 1)))
    serve.set_defaults(func=cmd_serve)
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
    results.add_argument("--all-goals", action="store_true",
                         help="every goal counted for a campaign, not only those it lists (?goals=all)")
    results.set_defaults(func=cmd_results)
    size = sub.add_parser("sample-size", help="visitors an experiment on a conversion rate needs")
    size.add_argument("--baseline", required=True, help="the control's conversion rate, e.g. 0.03")
    size.add_argument("--mde", required=True, help="the smallest relative change to detect, e.g. 0.1 for +10%%")
    size.add_argument("--alpha", default="0.05", help="significance level (default 0.05)")
    size.add_argument("--power", default="0.8", help="chance to detect the change when it is there (default 0.8)")
    size.add_argument("--variations", default="2", help="arms, control included (default 2)")
    size.add_argument("--json", action="store_true", help="print the JSON of GET .../sample-size")
    size.set_defaults(func=cmd_sample_size)
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
