"""One error shape for the whole API: {"error", "message", "details"}."""
from flask import jsonify
from werkzeug.exceptions import HTTPException


class APIError(Exception):
    """Raised anywhere in a request to answer with the common error shape."""

    def __init__(self, status, code, message, details=None, headers=None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details = details or []
        self.headers = headers or {}


def error_response(status, code, message, details=None, headers=None):
    body = {"error": code, "message": message, "details": details or []}
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers or {})
    return response


def _http_code(e):
    return (e.name or "error").lower().replace(" ", "_").replace("'", "")


def init_app(app):
    @app.errorhandler(APIError)
    def handle_api_error(e):
        return error_response(e.status, e.code, e.message, e.details, e.headers)

    @app.errorhandler(HTTPException)
    def handle_http_exception(e):
        message = e.description or e.name
        if e.code == 413:
            message = "The request body is too large."
        return error_response(e.code, _http_code(e), message)
