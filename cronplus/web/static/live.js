// Live updates, on top of pages that work without JavaScript: when the dashboard says a
// run started or ended (server-sent events), the page fetches itself and swaps its main
// content, keeping the scroll position and the keyboard focus where they can be kept.
(function () {
  "use strict";
  if (!window.EventSource || !window.fetch || !window.DOMParser) return;
  var badge = document.getElementById("live");
  var busy = false, again = false;

  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Live": "1" } })
      .then(function (answer) { return answer.ok || answer.status < 500 ? answer.text() : null; })
      .then(function (text) {
        if (text === null) return;
        var page = new DOMParser().parseFromString(text, "text/html");
        var fresh = page.getElementById("main"), old = document.getElementById("main");
        var active = document.activeElement;
        if (old && old.contains(active) && active !== old) return;  // never pull a form away
        var freshBadge = page.getElementById("live");
        if (fresh && old) {
          var y = window.scrollY;
          old.innerHTML = fresh.innerHTML;
          window.scrollTo(0, y);
        }
        if (freshBadge && badge) {
          badge.textContent = freshBadge.textContent;
          badge.setAttribute("data-live", freshBadge.getAttribute("data-live"));
        }
        document.documentElement.setAttribute("data-updated", String(Date.now()));
      })
      .catch(function () {})
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }

  var source = new EventSource("/live");
  source.addEventListener("change", refresh);
  source.addEventListener("down", refresh);
})();
