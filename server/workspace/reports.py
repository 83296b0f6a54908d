"""Results (per campaign: conversion rates with intervals, uplifts, the sample-ratio check, the
daily series, revenue; a CSV), the catalogue with what each strategy recommends, and the model
reports of predict.<goal>."""
import csv
import io

from flask import Blueprint, Response, abort, render_template, request

from server.catalog.products import item_id_problem
from server.predict.models import reports
from server.predict.training import AUC_FLOOR
from server.recs.serve import Query, recommend
from server.recs.strategies import STRATEGIES
from server.results import series
from server.store import get_store
from server.store.base import SLICE_DIMENSIONS
from server.workspace.guard import protect, site_role

bp = Blueprint("reports", __name__, url_prefix="/app/s/<site>", template_folder="templates")
protect(bp)


@bp.get("/results")
@site_role("viewer")
def results(site):
    data = _site_results(site)
    return render_template("reports/results.html", data=data, arms=series.arms)


def _site_results(site, breakdown=None):
    from server.results.report import (
        site_results,  # scipy loads on the first results page, not at start
    )
    return site_results(site, breakdown=breakdown)


def _campaign(site, key, breakdown=None):
    data = _site_results(site, breakdown)
    found = next((c for c in data["campaigns"] if c["key"] == key), None)
    if found is None:
        abort(404, f"No results for campaign '{key}': it is not live and has no events.")
    return data, found


@bp.get("/results/<key>")
@site_role("viewer")
def campaign_results(site, key):
    by = request.args.get("by") if request.args.get("by") in SLICE_DIMENSIONS else SLICE_DIMENSIONS[0]
    data, campaign = _campaign(site, key, by)
    goals = series.goals_of(campaign)
    goal = request.args.get("goal") if request.args.get("goal") in goals else (goals[0] if goals else None)
    daily = series.daily_series(get_store().daily_counters(site, key), goal)
    charts = {"rates": {g: series.rate_chart(campaign, g) for g in goals}, "daily": daily, "goal": goal}
    return render_template("reports/campaign.html", data=data, campaign=campaign, goals=goals, goal=goal,
                           charts=charts, arms=series.arms, money={g: series.money(campaign, g) for g in goals},
                           daily=daily, slices=series.slice_table(campaign), dimensions=SLICE_DIMENSIONS, by=by)


@bp.get("/results/<key>.csv")
@site_role("viewer")
def campaign_csv(site, key):
    _, campaign = _campaign(site, key)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(series.CSV_COLUMNS)
    writer.writerows(series.csv_rows(campaign))
    return Response(out.getvalue(), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{site}-{key}-results.csv"'})


@bp.get("/catalogue")
@site_role("viewer")
def catalog(site):
    store = get_store()
    product = request.args.get("product", "").strip()
    problem = item_id_problem(product) if product else None
    recommendations = []
    if product and not problem:
        for strategy in STRATEGIES:
            answer = recommend(store, site, Query(strategy=strategy, items=(product,), n=4))
            recommendations.append(answer)
    found = store.get_products(site, [product]) if product and not problem else {}
    return render_template("reports/catalog.html", status=store.recs_status(site), count=store.count_products(site),
                           product=product, problem=problem, found=found, recommendations=recommendations,
                           sample=store.list_products(site, "", 10))


@bp.get("/models")
@site_role("viewer")
def models(site):
    """Each goal's model report: AUC against the floor, the reliability curve, the top features."""
    return render_template("reports/models.html", reports=reports(site), floor=AUC_FLOOR)
