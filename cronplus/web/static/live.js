// Live updates, on top of pages that work without JavaScript: when the dashboard says a
// run started or ended (server-sent events), the page fetches itself and swaps its main
// content, keeping the scroll position and the keyboard focus where they can be kept.
(function () {
  "use strict";
  if (!window.EventSource || !window.fetch || !window.DOMParser) return;
  var badge = document.getElementById("live");
  var follows = document.body.getAttribute("data-follow") || "*";  // a job's page: that job
  var busy = false, again = false, pointer = false, last = 0;
  var PAUSE = 2000;  // at most one refresh every two seconds
  document.addEventListener("pointerdown", function () { pointer = true; }, true);
  document.addEventListener("pointerup", function () { setTimeout(function () { pointer = false; }, 300); }, true);

  function interesting(event) {
    if (follows === "*" || !event || !event.data) return true;
    try {
      var jobs = JSON.parse(event.data).jobs || ["*"];
      return jobs.indexOf("*") >= 0 || jobs.indexOf(follows) >= 0;
    } catch (e) { return true; }
  }

  function controlHasFocus() {
    var active = document.activeElement;
    return active && /^(BUTTON|INPUT|SELECT|TEXTAREA)$/.test(active.tagName);
  }

  function later(ms) {
    if (again) return;
    again = true;
    setTimeout(function () { again = false; refresh(); }, ms);
  }

  function refresh() {
    var wait = last + PAUSE - Date.now();
    if (busy || pointer || controlHasFocus() || wait > 0) { later(Math.max(wait, 500)); return; }
    busy = true;
    last = Date.now();
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Live": "1" } })
      .then(function (answer) { return answer.ok || answer.status < 500 ? answer.text() : null; })
      .then(function (text) {
        if (text === null) return;
        var page = new DOMParser().parseFromString(text, "text/html");
        var fresh = page.getElementById("main"), old = document.getElementById("main");
        if (pointer || controlHasFocus()) { later(500); return; }  // never pull a form away
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
      .then(function () { busy = false; });
  }

  var source = new EventSource("/live");
  source.addEventListener("change", function (event) { if (interesting(event)) refresh(); });
  source.addEventListener("down", function () { refresh(); });
})();
