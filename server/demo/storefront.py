"""The demo shop's pages, rendered from its feed (server/demo/feed.csv) as a shop's own backend
would: home, category, product, cart and thank-you pages, each pushing the GA4 e-commerce event a
real shop pushes before the tag (view_item, view_cart, purchase), and a generated SVG per product.
The cart is the shop's own (localStorage, in shop.js); Vitrina only reads what the data layer says."""
import csv
import html
import json
from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent
FEED = DEMO_DIR / "feed.csv"
SHOP_NAME = "Maison Vitrina"
# department -> (background, accent) of its product images
COLOURS = {"Kitchen": ("#f6e7d8", "#b5643c"), "Home": ("#eee6f3", "#7b5a96"), "Garden": ("#e3f0df", "#4f7d3a"),
           "Office": ("#e0ebf3", "#3a6485")}
# What the data layer says before the tag on each page, as GA4 asks shops to push it.
CART_FROM_STORAGE = "JSON.parse(localStorage.getItem('demo_cart') || '[]')"


def feed_text(shop_origin):
    """The feed file with the shop's links and images on its origin."""
    return FEED.read_text().replace("{{SHOP}}", shop_origin)


def products():
    """The feed's products in file order: {id, title, price, sale_price, availability, brand, department, kind}."""
    found = []
    for row in csv.DictReader(FEED.read_text().splitlines()):
        department, kind = row["product_type"].split(" > ")
        found.append({"id": row["id"], "title": row["title"], "price": float(row["price"].split()[0]),
                      "sale_price": float(row["sale_price"].split()[0]) if row["sale_price"] else None,
                      "availability": row["availability"], "brand": row["brand"], "department": department,
                      "kind": kind})
    return found


def _e(text):
    return html.escape(str(text), quote=True)


def _money(amount):
    return f"€{amount:.2f}"


def _script_json(value):
    """JSON inside a <script>: `<` escaped, so no text closes the element."""
    return json.dumps(value).replace("<", "\\u003c")


def ga4_item(product, quantity=None):
    item = {"item_id": product["id"], "item_name": product["title"], "item_brand": product["brand"],
            "item_category": product["department"], "item_category2": product["kind"],
            "price": product["sale_price"] or product["price"]}
    return {**item, "quantity": quantity} if quantity else item


def _product_svg(product):
    """A product picture drawn from its department and name: a tinted card, a shape, initials."""
    background, accent = COLOURS[product["department"]]
    initials = "".join(word[0] for word in product["title"].replace(",", "").split()[:2]).upper()
    shape = {"Mugs": '<rect x="70" y="75" width="80" height="90" rx="10"/><path d="M150 95h18a18 18 0 0 1 0 36h-18" '
                     'fill="none" stroke-width="10"/>',
             "Coffee": '<ellipse cx="110" cy="120" rx="42" ry="58"/>',
             "Tea": '<circle cx="110" cy="125" r="50"/><rect x="95" y="60" width="30" height="20" rx="4"/>',
             "Candles": '<rect x="80" y="85" width="60" height="85" rx="6"/><path d="M110 50q14 18 0 30q-14-12 0-30"/>',
             "Textiles": '<rect x="55" y="70" width="110" height="100" rx="18"/>',
             "Planters": '<path d="M65 85h90l-14 85h-62z"/>',
             "Tools": '<path d="M80 170l55-100 14 8-55 100z"/><circle cx="142" cy="66" r="16"/>',
             "Writing": '<rect x="70" y="60" width="80" height="110" rx="6"/>',
             "Desk": '<rect x="60" y="110" width="100" height="60" rx="8"/><rect x="98" y="60" width="24" height="50"/>',
             }.get(product["kind"], '<circle cx="110" cy="115" r="50"/>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="220" height="220" viewBox="0 0 220 220">'
            f'<rect width="220" height="220" rx="16" fill="{background}"/>'
            f'<g fill="{accent}" stroke="{accent}" opacity="0.85">{shape}</g>'
            f'<text x="110" y="205" font-family="Georgia, serif" font-size="18" text-anchor="middle" '
            f'fill="{accent}">{_e(initials)}</text></svg>')


class Storefront:
    """Renders the demo pages for one Vitrina server and site."""

    def __init__(self, vitrina_origin, site):
        self.vitrina_origin, self.site = vitrina_origin, site
        self.products = products()
        self.by_id = {p["id"]: p for p in self.products}
        self.departments = list(dict.fromkeys(p["department"] for p in self.products))

    product_svg = staticmethod(_product_svg)

    def page(self, path, query):
        """(status, html) of a page, or None for a path that is not one of the shop's pages."""
        if path in ("/", "/index.html"):
            return 200, self.home()
        if path == "/category.html":
            department = query.get("c", "")
            return (200, self.category(department)) if department in self.departments else (404, self.missing())
        if path == "/product.html":
            product = self.by_id.get(query.get("id", "mug-ceramic"))
            return (200, self.product(product)) if product else (404, self.missing())
        if path == "/cart.html":
            return 200, self.cart()
        if path == "/thanks.html":
            return 200, self.thanks()
        return None

    def _layout(self, title, page_type, main, data_layer=""):
        departments = "".join(f'<li data-category="{_e(d)}"><a href="/category.html?c={_e(d)}">{_e(d)}</a></li>'
                              for d in self.departments)
        return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{_e(title)} — {SHOP_NAME}</title>
  <meta name="vitrina:page-type" content="{page_type}">
  <link rel="stylesheet" href="/shop.css">
  <script>window.dataLayer = window.dataLayer || [];{data_layer}</script>
  <script src="{self.vitrina_origin}/v1/sites/{self.site}/tag.js"></script>
</head>
<body class="page-{page_type}">
  <header class="top">
    <a class="logo" href="/">{SHOP_NAME}</a>
    <nav><ul id="departments">{departments}</ul></nav>
    <a class="cart-link" href="/cart.html">Cart <span id="cart-count">0</span></a>
  </header>
  <main>{main}</main>
  <footer>A demo shop for Vitrina: try <a href="/?utm_source=newsletter">?utm_source=newsletter</a>
    (the newsletter hero), <a href="?vitrina_debug=1">?vitrina_debug=1</a> (every decision in the console), and
    a new private window for a new visitor.</footer>
  <script src="/shop.js"></script>
</body>
</html>
"""

    def _card(self, product):
        price = (f'<s>{_money(product["price"])}</s> {_money(product["sale_price"])}' if product["sale_price"]
                 else _money(product["price"]))
        stock = "" if product["availability"] == "in_stock" else '<span class="stock">Out of stock</span>'
        return (f'<a class="card" href="/product.html?id={_e(product["id"])}">'
                f'<img src="/img/{_e(product["id"])}.svg" alt="" width="220" height="220">'
                f'<span class="name">{_e(product["title"])}</span><span class="price">{price}</span>{stock}</a>')

    def home(self):
        featured = [next(p for p in self.products if p["department"] == d) for d in self.departments]
        featured += [self.by_id[i] for i in ("throw-wool", "kettle-gooseneck", "pen-fountain", "shears-pruning")]
        main = f"""
    <section id="hero"><h1>Welcome to the demo shop</h1>
      <p>Good things for the kitchen, the home, the garden and the desk.</p>
      <a class="cta" href="/product.html?id=mug-ceramic">See our bestseller</a></section>
    <h2>Picked for you</h2>
    <div class="grid">{''.join(self._card(p) for p in featured)}</div>"""
        return self._layout("Home", "home", main)

    def category(self, department):
        cards = "".join(self._card(p) for p in self.products if p["department"] == department)
        return self._layout(department, "category", f'<h1>{_e(department)}</h1><div class="grid">{cards}</div>',
                            f"dataLayer.push({{event: 'view_item_list', ecommerce: {{item_list_name: "
                            f"{_script_json(department)}}}}});")

    def product(self, product):
        in_stock = product["availability"] == "in_stock"
        price = (f'<s>{_money(product["price"])}</s> <b>{_money(product["sale_price"])}</b>' if product["sale_price"]
                 else f'<b>{_money(product["price"])}</b>')
        same_kind = [p for p in self.products if p["kind"] == product["kind"] and p["id"] != product["id"]][:3]
        late = " · ".join(f'<a href="/product.html?id={_e(p["id"])}">{_e(p["title"])}</a>' for p in same_kind)
        button = (f'<button class="add-to-cart" type="button" data-id="{_e(product["id"])}">Add to cart</button>'
                  if in_stock else '<button class="add-to-cart" type="button" disabled>Out of stock</button>')
        main = f"""
    <article class="product">
      <img src="/img/{_e(product["id"])}.svg" alt="" width="320" height="320">
      <div class="details">
        <p class="crumbs"><a href="/category.html?c={_e(product["department"])}">{_e(product["department"])}</a>
          &rsaquo; {_e(product["kind"])}</p>
        <h1>{_e(product["title"])}</h1>
        <p class="brand">{_e(product["brand"])}</p>
        <p class="price">{price}</p>
        <p id="social-proof" class="badge"></p>
        {button}
        <a id="buy" href="/cart.html">Go to the cart</a>
      </div>
    </article>
    <section id="upsell"><h2>Also in {_e(product["kind"])}</h2><p>Browse <a
      href="/category.html?c={_e(product["department"])}">all of {_e(product["department"])}</a>.</p></section>
    <div id="reco-slot"></div>
    <script>
      // A section the shop renders late, as from an API: the late-reco campaign still applies to it.
      setTimeout(function () {{
        document.getElementById("reco-slot").innerHTML =
          '<section id="reco"><h2>You may also like</h2><p class="links">{late.replace("'", "&#39;")}</p></section>';
      }}, 500);
    </script>"""
        item = ga4_item(product)
        return self._layout(product["title"], "product", main,
                            f"dataLayer.push({{event: 'view_item', ecommerce: {{currency: 'EUR', value: "
                            f"{item['price']}, items: [{_script_json(item)}]}}}});"
                            f"window.demoProduct = {_script_json(item)};")

    def cart(self):
        main = """
    <h1>Your cart</h1>
    <table id="cart-lines"><tbody></tbody></table>
    <p class="total">Total <b id="cart-total">€0.00</b></p>
    <button id="pay" type="button">Pay now</button>
    <section id="cart-reco"><p>Need anything else? <a href="/">Keep shopping</a>.</p></section>"""
        # The shop knows its cart before the tag runs, and tells the data layer (GA4 view_cart).
        return self._layout("Cart", "cart", main,
                            f"dataLayer.push({{event: 'view_cart', ecommerce: {{currency: 'EUR', items: "
                            f"{CART_FROM_STORAGE}}}}});")

    def thanks(self):
        main = """
    <h1>Thank you for your order</h1>
    <p>Order <b id="order-id"></b>: <span id="order-total"></span>. <a href="/">Back to the shop</a></p>"""
        # GA4's purchase with its order id: reloading this page pushes it again, counted once.
        return self._layout("Thank you", "thanks", main,
                            "var order = JSON.parse(localStorage.getItem('demo_last_order') || 'null');"
                            "if (order) dataLayer.push({event: 'purchase', ecommerce: {transaction_id: order.id, "
                            "currency: 'EUR', value: order.value, items: order.items}});")

    def missing(self):
        return self._layout("Not found", "other", '<h1>Not found</h1><p><a href="/">Back to the shop</a></p>')
