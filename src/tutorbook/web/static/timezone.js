// Suggest the browser's own time zone on the register form. The field stays editable, and the
// form works without JavaScript. A file, not inline, so the pages' CSP allows no inline script.
(function () {
  var field = document.getElementById("time_zone");
  if (!field) return;
  try { field.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"; } catch (e) {}
})();
