"""Signing in and out, setting a password from a one-time link, and the list of one's sites."""
from flask import (
    Blueprint,
    abort,
    g,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)

from server.accounts import audit
from server.accounts.users import (
    LinkInvalid,
    check_password,
    normal_email,
    password_problem,
    set_password,
    user_of_link,
)
from server.configs.validation import SCHEMA
from server.store import get_store
from server.workspace.guard import protect, safe_next, sign_in_allowed, signed_in
from server.workspace.guard import sign_in as start_session
from server.workspace.guard import sign_out as end_session

bp = Blueprint("account", __name__, url_prefix="/app", template_folder="templates")
protect(bp)


@bp.get("/")
@signed_in
def home():
    if len(g.roles) == 1:
        return redirect(url_for("campaigns.index", site=next(iter(g.roles))))
    return render_template("account/sites.html", roles=g.roles)


@bp.get("/schema/site-config.json")
def config_schema():
    """The config's JSON Schema, for the JSON view's completion."""
    return send_file(SCHEMA, mimetype="application/schema+json", max_age=300)


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    error, email = None, ""
    if request.method == "POST":
        email = request.form.get("email", "")[:300]
        normal = normal_email(email)
        if not sign_in_allowed(normal or email):
            abort(429, "Too many sign-in attempts: wait five minutes and try again.")
        user = get_store().get_user(normal) if normal else None
        if check_password(user, request.form.get("password", "")):
            start_session(user)
            return redirect(safe_next(request.args.get("next")))
        error = "This email and password do not match an account."
    return render_template("account/sign_in.html", error=error, email=email), 401 if error else 200


@bp.post("/sign-out")
def sign_out():
    end_session()
    return redirect(url_for("account.sign_in"))


@bp.post("/sign-out-everywhere")
@signed_in
def sign_out_everywhere():
    get_store().end_sessions(g.user.email)
    for site in g.roles:
        audit.record(site, "user.sign-out-everywhere", f"{g.user.email} signed out of every session")
    end_session()
    return redirect(url_for("account.sign_in"))


@bp.route("/set-password/<token>", methods=["GET", "POST"])
def set_password_page(token):
    try:
        user = user_of_link(token)
    except LinkInvalid as e:
        return render_template("account/link_invalid.html", message=str(e)), 410
    problem = None
    if request.method == "POST":
        password = request.form.get("password", "")
        problem = password_problem(password)
        if problem is None and password != request.form.get("confirm", ""):
            problem = "the two passwords differ"
        if problem is None:
            set_password(user.email, password)
            user = get_store().get_user(user.email)
            for site in get_store().roles_of(user.email):
                audit.record(site, "user.set-password", f"{user.email} set a password", who=f"user:{user.email}")
            start_session(user)
            return redirect(url_for("account.home"))
    return render_template("account/set_password.html", user=user, problem=problem), 400 if problem else 200
