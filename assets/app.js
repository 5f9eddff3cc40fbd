// hop: small enhancements for every page. Pages work without it.
(function () {
  "use strict";
  // Forms send the browser's time zone, so a local expiry time means what the user meant.
  var tz = "UTC";
  try { tz = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"; } catch (e) {}
  document.querySelectorAll("input[data-tz]").forEach(function (el) { el.value = tz; });

  // A stored UTC time shown in a datetime-local field, converted to local time.
  function pad(n) { return String(n).padStart(2, "0"); }
  document.querySelectorAll("input[data-utc]").forEach(function (el) {
    if (!el.dataset.utc) return;
    var d = new Date(el.dataset.utc);
    if (isNaN(d)) return;
    el.value = d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + "T" + pad(d.getHours()) + ":" + pad(d.getMinutes());
  });

  // Times rendered in UTC, shown in local time.
  document.querySelectorAll("time[data-local]").forEach(function (el) {
    var d = new Date(el.getAttribute("datetime"));
    if (!isNaN(d)) el.textContent = d.toLocaleString();
  });

  // Copy buttons.
  document.querySelectorAll("button[data-copy]").forEach(function (btn) {
    btn.addEventListener("click", function () {
      var text = btn.dataset.copy;
      var status = btn.parentElement.querySelector(".copied");
      function done(msg) { if (status) status.textContent = msg; }
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(text).then(function () { done("Copied"); }, function () { fallback(); });
      } else { fallback(); }
      function fallback() {
        var area = document.createElement("textarea");
        area.value = text; document.body.appendChild(area); area.select();
        try { document.execCommand("copy"); done("Copied"); } catch (e) { done("Press Ctrl+C to copy"); }
        area.remove();
      }
    });
  });
})();
