"""server.qa's pure helpers (the browser side is e2e/test_qa.py)."""
import pytest

from server.qa import force_url, parse_debug_line, visitor_cookie


def test_force_url_adds_merges_and_refuses_bad_keys():
    assert force_url("http://shop.test/p?a=1#top", {"hero": "promo"}) == \
        "http://shop.test/p?a=1&vitrina_force=hero:promo#top"
    # A force already in the URL is kept unless overridden; debug is added once.
    assert force_url("http://shop.test/?vitrina_force=hero:old,note:today&vitrina_debug=1",
                     {"hero": "promo"}, debug=True) == \
        "http://shop.test/?vitrina_force=hero:promo,note:today&vitrina_debug=1"
    assert force_url("http://shop.test/") == "http://shop.test/"
    for bad in ({"a:b": "v"}, {"a": "v,w"}, {"": "v"}):
        with pytest.raises(ValueError):
            force_url("http://shop.test/", bad)
    assert parse_debug_line("[vitrina] hero null page not matched") == ("hero", None, "page not matched")
    assert parse_debug_line("something else") is None
    assert visitor_cookie("https://shop.test/p?q=1", "qa-visitor-1") == {
        "name": "vtr_id", "value": "qa-visitor-1", "url": "https://shop.test"}
