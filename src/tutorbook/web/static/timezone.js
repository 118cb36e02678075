// The visitor's time zone, from the browser: kept in a cookie so every page shows times on the
// visitor's clock (the footer's "Change time zone" overrides it). Also suggests the zone on the
// register form. Pages work without it (times are then shown in the profile's zone, or UTC).
(function () {
  "use strict";
  var zone;
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { return; }
  if (!zone) { return; }
  var field = document.getElementById("time_zone");
  if (field && field.getAttribute("data-suggest") === "browser") { field.value = zone; }
  var kept = document.cookie.split("; ").some(function (c) { return c.indexOf("tutorbook_zone=") === 0; });
  if (kept) { return; }
  var secure = location.protocol === "https:" ? "; secure" : "";
  document.cookie = "tutorbook_zone=" + encodeURIComponent(zone) + "; path=/; max-age=31536000; samesite=lax" + secure;
  if (document.body && document.body.getAttribute("data-zone") !== zone && document.readyState !== "loading" &&
      !document.querySelector("form[method=post] input:not([type=hidden])")) {
    location.reload();
  }
})();
