// The shop page: loads the Live Execution Monitor's browser logger from the monitor, starts it
// the way the README shows, then talks to the shop's JSON API. The shop works without the
// monitor too: if it cannot be reached, a do-nothing stand-in takes its place.
"use strict";

(() => {
  const byId = (id) => document.getElementById(id);
  const idle = () => undefined;
  const NO_MONITOR = {
    trackComponent: () => ({
      beginRender: idle,
      mount: idle,
      update: idle,
      unmount: idle,
      render: (fn) => fn(),
    }),
    record: idle,
    flush: () => Promise.resolve(),
    stop: idle,
    stats: () => ({ queued: 0, sent: 0, dropped: 0, retried: 0, failed: 0 }),
  };

  function loadScript(src) {
    return new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = src;
      script.onload = resolve;
      script.onerror = () => reject(new Error(`cannot load ${src}`));
      document.head.append(script);
    });
  }

  /** Asks the shop where the monitor is, loads its bundle from there and starts it. */
  async function startMonitor() {
    const config = await (await fetch("/api/config")).json();
    const monitorUrl = config.monitor_url;
    await loadScript(`${monitorUrl}/static/live-monitor.js`);
    // The README's snippet, with this shop's monitor URL:
    const monitor = LiveMonitor.initLiveMonitor({
      endpoint: monitorUrl,
      tracePropagationTargets: [location.origin],
    });
    return monitor;
  }

  /** Calls the shop's JSON API; rejects with the server's error message on a non-2xx answer. */
  async function api(method, path, body) {
    const init = { method, headers: { Accept: "application/json" } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
    return data;
  }

  function element(tag, text, attributes = {}) {
    const el = document.createElement(tag);
    if (text !== undefined) el.textContent = text;
    for (const [name, value] of Object.entries(attributes)) el.setAttribute(name, value);
    return el;
  }

  /** The product list, a framework-free component: render() reports mount, then updates. */
  function productList(monitor) {
    const tracker = monitor.trackComponent("ProductList");
    const list = byId("product-list");
    return (products) =>
      tracker.render(() => {
        list.replaceChildren(
          ...products.map((product) => {
            const item = element("li", `${product.name}: ${product.price.toFixed(2)} €`);
            const view = element("button", "Details", { type: "button", class: "view-product" });
            view.dataset.id = String(product.id);
            const add = element("button", "Add to cart", { type: "button", class: "add-to-cart" });
            add.dataset.id = String(product.id);
            item.append(view, add);
            return item;
          }),
        );
      });
  }

  /** The cart, tracked by hand: beginRender() then mount() or update(); unmount() on close. */
  function cartView(monitor) {
    const tracker = monitor.trackComponent("Cart");
    const view = byId("cart-view");
    let cart = { items: [], count: 0, total: 0 };
    let open = false;
    const draw = () => {
      view.replaceChildren(
        element("p", `${cart.count} item(s), ${cart.total.toFixed(2)} €`, { id: "cart-summary" }),
      );
    };
    return {
      show() {
        tracker.beginRender();
        draw();
        open = true;
        tracker.mount();
        byId("close-cart").textContent = "Close cart";
      },
      set(next) {
        cart = next;
        if (!open) return;
        tracker.beginRender();
        draw();
        tracker.update({ items: cart.count });
      },
      toggle() {
        if (!open) return this.show();
        view.replaceChildren();
        open = false;
        tracker.unmount();
        byId("close-cart").textContent = "Open cart";
      },
    };
  }

  function showError(target, error) {
    target.textContent = `Failed: ${error.message}`;
    target.classList.add("error");
  }

  function fillReviews() {
    const list = byId("review-list");
    for (let n = 1; n <= 40; n++) {
      list.append(element("li", `Review ${n}: good coffee, quick delivery, would order again.`));
    }
  }

  async function start() {
    fillReviews();
    let monitor = NO_MONITOR;
    try {
      monitor = await startMonitor();
      byId("monitor-status").textContent = "Monitor connected: this page reports to it.";
      document.body.dataset.monitor = "on";
    } catch (error) {
      byId("monitor-status").textContent =
        `Monitor not reachable (${error.message}); the shop works anyway.`;
      document.body.dataset.monitor = "off";
    }
    window.shop = { monitor };
    const renderProducts = productList(monitor);
    const cart = cartView(monitor);
    cart.show();

    const search = async (query) => {
      const path = query ? `/api/products?q=${encodeURIComponent(query)}` : "/api/products";
      renderProducts((await api("GET", path)).products);
    };
    byId("search-form").addEventListener("submit", (event) => {
      event.preventDefault();
      search(byId("search").value.trim()).catch((error) =>
        showError(byId("product-detail"), error),
      );
    });
    byId("product-list").addEventListener("click", async (event) => {
      const button = event.target.closest("button");
      if (!button) return;
      const id = Number(button.dataset.id);
      try {
        if (button.classList.contains("view-product")) {
          const product = await api("GET", `/api/products/${id}`);
          byId("product-detail").textContent = `${product.name}, ${product.price.toFixed(2)} €`;
        } else {
          cart.set(await api("POST", "/api/cart", { product_id: id, quantity: 1 }));
        }
      } catch (error) {
        showError(byId("product-detail"), error);
      }
    });
    byId("close-cart").addEventListener("click", () => cart.toggle());
    byId("show-order").addEventListener("click", async () => {
      try {
        const order = await api("GET", "/api/orders/1001");
        byId("order-view").textContent = `Order ${order.id}: ${order.status}`;
      } catch (error) {
        showError(byId("order-view"), error);
      }
    });
    byId("checkout-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const form = new FormData(event.target);
      const result = byId("checkout-result");
      result.classList.remove("error");
      result.textContent = "Paying…";
      try {
        await api("POST", "/api/checkout", { email: form.get("email"), card: form.get("card") });
        result.textContent = "Paid, thank you!";
      } catch (error) {
        showError(result, error);
      }
    });
    await search("");
    document.body.dataset.ready = "true";
  }

  start();
})();
