"""The HTTP surface: the ASGI front and gunicorn runner, the Flask blueprints (public and merchant API),
API-key auth and the access log. Routes here only parse requests and shape answers; the work lives in
the other rooms."""
