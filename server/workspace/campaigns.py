"""Campaigns (list, edit), segments (with the builder), goals and the JSON view of the config."""
import copy

from flask import (
    Blueprint,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)

import server.workspace.forms as forms
from server.configs import publishing
from server.configs.compiler import compile_campaign
from server.configs.validation import parse_config
from server.workspace.editing import current, go_to, save
from server.workspace.guard import protect, site_role

bp = Blueprint("campaigns", __name__, url_prefix="/app/s/<site>", template_folder="templates")
protect(bp)
STATUSES = ("live", "paused", "draft")
SCHEMA_URL = "/app/schema/site-config.json"


def _live_campaigns(site):
    latest = publishing.load_latest(site)
    return {c["key"]: c for c in latest[0]["campaigns"]} if latest else {}


def _summaries(site, config):
    """One row per draft campaign for the list: state against what is live, visitors, uplift."""
    from server.results.report import (
        site_results,  # scipy loads on the first results page, not at start
    )
    live = _live_campaigns(site)
    results = {c["key"]: c for c in site_results(site)["campaigns"]}
    rows = []
    for campaign in config.get("campaigns", []):
        key = campaign.get("key")
        result = results.get(key)
        visitors = sum(v["visitors"] for v in result["variations"]) + result["holdout"]["visitors"] if result else 0
        goal = (campaign.get("goals") or [None])[0]
        rows.append({"key": key, "name": campaign.get("name") or key, "type": campaign.get("type", "personalization"),
                     "status": campaign.get("status", "live"), "segment": campaign.get("segment") or "everyone",
                     "state": _state(campaign, live.get(key)), "visitors": visitors, "goal": goal,
                     "uplift": _primary_uplift(result, goal)})
    return rows


def _state(campaign, live):
    if live is None:
        return "not live"
    same = compile_campaign(campaign) == live if campaign.get("status", "live") == "live" else False
    return "live" if same else "live, draft differs"


def _primary_uplift(result, goal):
    """The best uplift of a variation on the primary goal: against control, else against the holdout."""
    if not result or goal is None:
        return None
    comparisons = [c for c in result["comparisons"] if c["goal"] == goal and c["uplift"] is not None
                   and c.get("metric", "conversion_rate") == "conversion_rate"]
    for baseline in ("control", "holdout"):
        found = [c for c in comparisons if c["vs"] == baseline]
        if found:
            best = max(found, key=lambda c: c["uplift"])
            return {"variation": best["variation"], "vs": baseline, "uplift": best["uplift"], "p_value": best["p_value"]}
    return None


@bp.get("/campaigns")
@site_role("viewer")
def index(site):
    config, _ = current(site)
    rows = _summaries(site, config)
    query, status = request.args.get("q", "").strip().lower()[:100], request.args.get("status", "")
    if query:
        rows = [r for r in rows if query in r["key"].lower() or query in r["name"].lower()
                or query in r["segment"].lower()]
    if status in STATUSES:
        rows = [r for r in rows if r["status"] == status]
    return render_template("campaigns/index.html", rows=rows, q=query, status=status, statuses=STATUSES)


def _form_context(site, config, etag, campaign, at, problems=(), notice=None, stale=None):
    return {"campaign": campaign, "at": at, "etag": etag, "segments": sorted(config.get("segments", {})),
            "goals": sorted(config.get("goals", {})), "problems": problems, "notice": notice, "stale": stale,
            "errors": forms.place(problems, forms.campaign_paths(campaign, at)), "kinds": forms.ACTION_KINDS,
            "triggers": forms.TRIGGERS, "action_row": forms.action_row, "trigger_fields": forms.trigger_fields,
            "pretty": forms.pretty, "statuses": STATUSES}


def _index_of(config, key):
    for i, campaign in enumerate(config.get("campaigns", [])):
        if campaign.get("key") == key:
            return i
    return None


@bp.route("/campaigns/new", methods=["GET", "POST"], defaults={"key": None})
@bp.route("/campaigns/<key>", methods=["GET", "POST"])
@site_role("viewer")
def edit(site, key):
    config, etag = current(site)
    campaigns = config.setdefault("campaigns", [])
    index = len(campaigns) if key is None else _index_of(config, key)
    if index is None:
        abort(404, f"There is no campaign '{key}' in the draft (someone may have renamed or deleted it).")
    at = f"/campaigns/{index}"
    if request.method == "GET":
        campaign = copy.deepcopy(campaigns[index]) if key else {"key": "", "type": "experiment", "status": "draft",
                                                                  "variations": [{"key": "control", "actions": []}]}
        return render_template("campaigns/edit.html", **_form_context(site, config, etag, campaign, at))
    if not g.role or not forms.role_allows_edit(g.role):
        abort(403, "Viewers cannot change the config.")
    problems = forms.FormProblems()
    campaign = forms.campaign_from_form(request.form, at, problems)
    op = request.form.get("op", "save")
    if op != "save":
        forms.apply_op(campaign, op)
        return render_template("campaigns/edit.html", **_form_context(site, config, request.form.get("etag", etag),
                                                                       campaign, at))
    campaigns[index:index + 1] = [campaign]
    verb = "created" if key is None else "changed"
    saved = save(site, config, "campaign.save", f"{verb} campaign '{campaign['key']}'",
                 {"campaign": campaign["key"]}, form_problems=problems)
    if not saved.ok:
        return render_template("campaigns/edit.html", **_form_context(
            site, config, request.form.get("etag", etag), campaign, at, saved.problems, stale=saved.stale)), \
            412 if saved.stale else 400
    flash(f"Saved campaign '{campaign['key']}' to the draft. Publish to make it live.")
    return go_to(url_for("campaigns.edit", site=site, key=campaign["key"]))


@bp.post("/campaigns/<key>/delete")
@site_role("editor")
def delete(site, key):
    config, _ = current(site)
    index = _index_of(config, key)
    if index is None:
        abort(404, f"There is no campaign '{key}' in the draft.")
    del config["campaigns"][index]
    saved = save(site, config, "campaign.delete", f"deleted campaign '{key}'", {"campaign": key})
    flash(saved.stale or (f"Deleted campaign '{key}' from the draft." if saved.ok else "Not deleted: " + "; ".join(
        p["message"] for p in saved.problems)))
    return redirect(url_for("campaigns.index", site=site))


@bp.get("/segments")
@site_role("viewer")
def segments(site):
    config, _ = current(site)
    used = {}
    for campaign in config.get("campaigns", []):
        if campaign.get("segment"):
            used.setdefault(campaign["segment"], []).append(campaign.get("key"))
    return render_template("campaigns/segments.html", segments=config.get("segments", {}), used=used,
                           pretty=forms.pretty)


def _builder_context(site, name, match, rows, etag, json_text=None, problems=(), stale=None, is_new=True):
    rows = rows or [{"attribute": "utm.source", "part": "", "operator": "$eq", "value": ""}]
    built = forms.rows_condition(rows, match)
    shown = {f"/segments/{name}"} if name else set()
    return {"name": name, "match": match, "rows": rows, "built": built, "pretty": forms.pretty, "etag": etag,
            "attributes": forms.attributes(), "attribute": forms.attribute, "operators": forms.OPERATORS,
            "by_type": forms.OPERATORS_BY_TYPE, "json_text": json_text, "problems": problems, "stale": stale,
            "errors": forms.place(problems, shown | {"/segments"}), "is_new": is_new}


@bp.route("/segments/new", methods=["GET", "POST"], defaults={"name": None})
@bp.route("/segments/<name>", methods=["GET", "POST"])
@site_role("viewer")
def segment(site, name):
    config, etag = current(site)
    segments_ = config.setdefault("segments", {})
    if name is not None and name not in segments_:
        abort(404, f"There is no segment '{name}' in the draft.")
    if request.method == "GET":
        if name is None:
            return render_template("campaigns/segment.html", **_builder_context(site, "", "all", None, etag))
        as_rows = forms.condition_rows(segments_[name])
        if as_rows is None:
            return render_template("campaigns/segment.html", **_builder_context(
                site, name, "all", None, etag, json_text=forms.pretty(segments_[name]), is_new=False))
        return render_template("campaigns/segment.html", **_builder_context(site, name, as_rows[0], as_rows[1], etag,
                                                                            is_new=False))
    if not forms.role_allows_edit(g.role):
        abort(403, "Viewers cannot change the config.")
    new_name = request.form.get("name", "").strip()
    match, rows = request.form.get("match", "all"), forms.builder_rows(request.form)
    op = request.form.get("op", "save")
    if op == "add-row":
        rows.append({"attribute": "utm.source", "part": "", "operator": "$eq", "value": ""})
    elif op.startswith("remove-row:") and op[11:].isdecimal() and int(op[11:]) < len(rows):
        del rows[int(op[11:])]
    json_text = request.form.get("json")
    context = dict(site=site, name=new_name, match=match, rows=rows, etag=request.form.get("etag", etag),
                   json_text=json_text, is_new=name is None)
    if op != "save":  # a row added or removed, or the builder's preview (htmx, on every change)
        return render_template("campaigns/segment.html", **_builder_context(**context))
    problems = forms.FormProblems()
    condition = problems.json_field(json_text, f"/segments/{new_name}") if json_text is not None else \
        forms.rows_condition(rows, match)
    if name is not None and new_name != name:
        segments_.pop(name, None)
        for campaign in config.get("campaigns", []):
            if campaign.get("segment") == name:
                campaign["segment"] = new_name
    segments_[new_name] = condition if condition is not None else {}
    saved = save(site, config, "segment.save", f"saved segment '{new_name}'",
                 {"segment": new_name, "condition": condition}, form_problems=problems)
    if not saved.ok:
        return render_template("campaigns/segment.html", **_builder_context(
            **context, problems=saved.problems, stale=saved.stale)), 412 if saved.stale else 400
    flash(f"Saved segment '{new_name}' to the draft.")
    return redirect(url_for("campaigns.segments", site=site))


@bp.route("/goals", methods=["GET", "POST"])
@site_role("viewer")
def goals(site):
    config, etag = current(site)
    goals_ = config.setdefault("goals", {})
    problems, stale = [], None
    if request.method == "POST":
        if not forms.role_allows_edit(g.role):
            abort(403, "Viewers cannot change the config.")
        name, kind, value = (request.form.get(k, "").strip() for k in ("name", "kind", "value"))
        form_problems = forms.FormProblems()
        if request.form.get("op", "").startswith("delete:"):
            goals_.pop(request.form["op"][7:], None)
            summary = f"deleted goal '{request.form['op'][7:]}'"
        else:
            goals_[name] = {kind: form_problems.json_field(value, f"/goals/{name}/pageview") if kind == "pageview"
                            else value}
            summary = f"saved goal '{name}'"
        saved = save(site, config, "goal.save", summary, {"goal": name}, form_problems=form_problems)
        if saved.ok:
            flash(summary[0].upper() + summary[1:] + " in the draft.")
            return redirect(url_for("campaigns.goals", site=site))
        problems, stale = saved.problems, saved.stale
    return render_template("campaigns/goals.html", goals=goals_, etag=etag, problems=problems, stale=stale,
                           form=request.form, errors=forms.place(problems, {f"/goals/{request.form.get('name', '')}"}),
                           pretty=forms.pretty)


@bp.route("/config", methods=["GET", "POST"])
@site_role("viewer")
def config_json(site):
    config, etag = current(site)
    text, problems, stale = forms.pretty(config), [], None
    if request.method == "POST":
        if not forms.role_allows_edit(g.role):
            abort(403, "Viewers cannot change the config.")
        text = request.form.get("config", "")
        parsed, problems = parse_config(text)
        if not problems:
            saved = save(site, parsed if parsed is not None else {}, "config.save", "saved the whole config (JSON view)")
            if saved.ok:
                flash("Saved the config to the draft." + (" Sanitising removed: " + "; ".join(
                    f"{w['path']}: {w['message']}" for w in saved.warnings) if saved.warnings else ""))
                return redirect(url_for("campaigns.config_json", site=site))
            problems, stale = saved.problems, saved.stale
        etag = request.form.get("etag", etag)
    status = 412 if stale else 400 if problems else 200
    return render_template("campaigns/config.html", text=text, etag=etag, problems=problems, stale=stale,
                           schema_url=SCHEMA_URL), status
