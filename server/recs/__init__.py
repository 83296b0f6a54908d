"""Recommendations: signals from browsers and orders turned into item-to-item and site-wide
rankings by a periodic build (one background worker, a store lock per site), and strategies that
answer a page's request from those rankings, the catalogue's filters and the merchant's
merchandising rules."""
