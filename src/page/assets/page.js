// lxc-operator status page: live updates. Listens to /events (server-sent events) and, when a
// change names something this page shows (body[data-watch]), fetches the page again and swaps
// its <main>. Without JavaScript the page is a plain page: reload it.
(function () {
  "use strict";
  if (!window.EventSource || !window.fetch || !window.DOMParser) return;
  var watch = (document.body.getAttribute("data-watch") || "").split(" ").filter(Boolean);
  var live = document.getElementById("live");
  var pending = null;
  var refreshes = 0;

  function concerns(what) {
    if (what === "*") return watch.length > 0;
    return watch.some(function (w) {
      return what === w || what.indexOf(w) === 0 || (what.slice(-2) === "/*" && w.indexOf(what.slice(0, -1)) === 0);
    });
  }

  function refresh(because) {
    pending = null;
    fetch(window.location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (text) {
        var doc = new DOMParser().parseFromString(text, "text/html");
        var fresh = doc.getElementById("main");
        var main = document.getElementById("main");
        if (!fresh || !main) return;
        // Keep what the viewer is typing in a filter.
        var active = document.activeElement;
        if (active && main.contains(active) && active.form) return schedule(because, 3000);
        main.replaceWith(fresh);
        refreshes += 1;
        document.body.setAttribute("data-refreshes", String(refreshes));
        var heading = fresh.querySelector("h1");
        // One line per refresh in the browser console (the Chromium test reads it).
        console.info("lxc-operator page: refreshed after " + because + ": " +
          (heading ? heading.textContent : ""));
      })
      .catch(function () { /* the next change tries again */ });
  }

  function schedule(because, ms) {
    if (pending === null) pending = window.setTimeout(function () { refresh(because); }, ms);
  }

  var source = new EventSource("/events");
  source.addEventListener("hello", function () {
    if (live) { live.textContent = "live"; live.className = "live on"; }
    console.info("lxc-operator page: live");
  });
  source.addEventListener("error", function () {
    if (live) { live.textContent = "reconnecting"; live.className = "live"; }
  });
  source.addEventListener("change", function (e) {
    if (concerns(e.data)) schedule(e.data, 400);
  });
})();
