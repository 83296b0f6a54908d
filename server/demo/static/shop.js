// The demo shop's own code: its cart in localStorage, the GA4 events a shop pushes, and the
// recommendation:add hook a cart page offers so the shopper adds without leaving it.
(function () {
  var CART = "demo_cart";
  var cart = JSON.parse(localStorage.getItem(CART) || "[]");
  var money = function (n) { return "€" + n.toFixed(2); };
  var total = function () { return cart.reduce(function (s, l) { return s + l.price * l.quantity; }, 0); };
  function save() {
    localStorage.setItem(CART, JSON.stringify(cart));
    document.getElementById("cart-count").textContent = cart.reduce(function (s, l) { return s + l.quantity; }, 0);
  }
  function add(item) {
    var line = cart.filter(function (l) { return l.item_id === item.item_id; })[0];
    if (line) line.quantity += 1;
    else cart.push(Object.assign({}, item, {quantity: 1}));
    save();
    window.dataLayer.push({event: "add_to_cart", ecommerce: {currency: "EUR", value: item.price,
                                                             items: [Object.assign({}, item, {quantity: 1})]}});
  }
  function showCart() {
    var body = document.querySelector("#cart-lines tbody");
    if (!body) return;
    body.innerHTML = cart.length ? cart.map(function (l) {
      return "<tr><td><img src='/img/" + l.item_id + ".svg' alt='' width='48' height='48'></td><td>" +
        l.item_name.replace(/</g, "&lt;") + "</td><td>× " + l.quantity + "</td><td>" + money(l.price * l.quantity) + "</td></tr>";
    }).join("") : "<tr><td>Your cart is empty.</td></tr>";
    document.getElementById("cart-total").textContent = money(total());
  }
  save();
  showCart();
  var button = document.querySelector("button.add-to-cart[data-id]");
  // (the button's text is a campaign's to change: the cart count says it was added)
  if (button && window.demoProduct) button.addEventListener("click", function () { add(window.demoProduct); });
  // A recommended product's "Add" button on the cart page: the shop adds it, the shopper stays.
  window.vitrina && vitrina.on("recommendation:add", function (product) {
    add({item_id: product.id, item_name: product.title, price: product.sale_price || product.price});
    showCart();
  });
  var pay = document.getElementById("pay");
  if (pay) pay.addEventListener("click", function () {
    if (!cart.length) return;
    var order = {id: "D-" + Date.now().toString(36).toUpperCase(), value: Math.round(total() * 100) / 100, items: cart};
    localStorage.setItem("demo_last_order", JSON.stringify(order));
    cart = [];
    save();
    location.href = "/thanks.html";
  });
  var order = JSON.parse(localStorage.getItem("demo_last_order") || "null");
  if (order && document.getElementById("order-id")) {
    document.getElementById("order-id").textContent = order.id;
    document.getElementById("order-total").textContent = money(order.value);
  }
})();
