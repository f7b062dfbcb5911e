// taskino console: local times, the live events page and live updates of
// a task's timeline, over Server-Sent Events. Every value from the server
// goes into the page as text (textContent), never as markup.
"use strict";
(function () {
  // Times as the server writes them: 2026-12-04 16:25:12 CET (and .123
  // with milliseconds), in the viewer's zone.
  var parts = new Intl.DateTimeFormat("en-US", {year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23", timeZoneName: "short"});
  function stamp(d, ms) {
    var p = {};
    parts.formatToParts(d).forEach(function (x) { p[x.type] = x.value; });
    var s = p.year + "-" + p.month + "-" + p.day + " " + p.hour + ":" + p.minute + ":" + p.second;
    if (ms) s += "." + String(d.getMilliseconds()).padStart(3, "0");
    return s + " " + p.timeZoneName;
  }
  var fmt = {format: function (d) { return stamp(d, d.getMilliseconds() !== 0); }};
  function localize(root) {
    root.querySelectorAll("time.local").forEach(function (t) {
      var d = new Date(t.getAttribute("datetime"));
      if (isNaN(d)) return;
      t.textContent = fmt.format(d);
      t.title = "your time; UTC " + t.getAttribute("datetime");
      // A second line that would only repeat the one above it: hidden.
      var shown = t.getAttribute("data-shown");
      if (shown && shown.replace(/\.\d+ /, " ") === stamp(d, false)) t.hidden = true;
    });
  }
  function cell(tr, text, cls) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }
  function live() {
    var table = document.getElementById("live");
    if (!table) return;
    var rows = document.getElementById("live-rows"), state = document.getElementById("live-state");
    var pauseBtn = document.getElementById("live-pause"), paused = false, held = [];
    var base = table.getAttribute("data-base");
    function add(e, fresh) {
      var tr = document.createElement("tr");
      tr.setAttribute("data-id", e.id);
      tr.setAttribute("data-type", e.type);
      tr.setAttribute("data-fire", e.fire);
      if (fresh) tr.className = "fresh";
      var t = new Date(e.time);
      cell(tr, isNaN(t) ? e.time : stamp(t, true));
      var b = document.createElement("span");
      b.className = "badge o-" + e.type;
      b.textContent = e.type;
      tr.appendChild(document.createElement("td")).appendChild(b);
      var td = document.createElement("td");
      if (e.task) {
        var a = document.createElement("a");
        a.href = base + "/task?name=" + encodeURIComponent(e.task);
        a.textContent = e.task;
        td.appendChild(a);
      }
      tr.appendChild(td);
      var s = new Date(e.slot);
      cell(tr, e.slot && !isNaN(s) ? fmt.format(s) : "");
      cell(tr, e.worker + (e.attempt > 1 ? " (attempt " + e.attempt + ")" : ""));
      cell(tr, e.detail, "detail");
      rows.insertBefore(tr, rows.firstChild);
      while (rows.children.length > 500) rows.removeChild(rows.lastChild);
    }
    var src = new EventSource(table.getAttribute("data-src"));
    src.onopen = function () { state.textContent = paused ? "paused" : "live"; };
    src.onerror = function () { state.textContent = "reconnecting…"; };
    src.onmessage = function (m) {
      var e;
      try { e = JSON.parse(m.data); } catch (err) { return; }
      if (paused) { held.push(e); state.textContent = "paused: " + held.length + " new"; return; }
      add(e, true);
    };
    pauseBtn.addEventListener("click", function () {
      paused = !paused;
      pauseBtn.setAttribute("aria-pressed", paused ? "true" : "false");
      pauseBtn.textContent = paused ? "Resume" : "Pause";
      if (!paused) { held.forEach(function (e) { add(e, true); }); held = []; state.textContent = "live"; }
      else state.textContent = "paused";
    });
  }
  function timeline() {
    var box = document.getElementById("timeline");
    if (!box || !window.EventSource) return;
    var base = document.body.getAttribute("data-base");
    var task = box.getAttribute("data-task");
    var at = new URLSearchParams(location.search).get("at") || "";
    var src = new EventSource(base + "/events?recent=0&task=" + encodeURIComponent(task));
    var busy = false, again = false;
    function refresh() {
      if (busy) { again = true; return; }
      busy = true;
      var focused = box.contains(document.activeElement) ? document.activeElement.getAttribute("href") : null;
      fetch(box.getAttribute("data-src") + "&at=" + encodeURIComponent(at), {credentials: "same-origin"}).then(function (r) {
        return r.ok ? r.text() : Promise.reject(r.status);
      }).then(function (html) {
        var doc = new DOMParser().parseFromString("<div>" + html + "</div>", "text/html");
        box.replaceChildren.apply(box, Array.prototype.slice.call(doc.body.firstChild.childNodes));
        localize(box);
        if (focused) { // keep the keyboard where it was
          var again2 = Array.prototype.find.call(box.querySelectorAll("a[href]"), function (a) { return a.getAttribute("href") === focused; });
          if (again2) again2.focus();
        }
        box.setAttribute("data-updated", String(Date.now()));
      }).catch(function () {}).then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
    }
    src.onmessage = refresh;
  }
  document.addEventListener("DOMContentLoaded", function () {
    localize(document);
    live();
    timeline();
  });
})();
