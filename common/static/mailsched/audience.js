// The campaign page's live recipient count: when the operator changes the audience's labels or segments,
// ask the server how many sendable contacts the choice selects (the same selector the send uses).
(function () {
  "use strict";
  var panel = document.querySelector(".audience-summary[data-count-url]");
  if (!panel) return;
  var names = ["include_labels", "exclude_labels", "include_segments", "exclude_segments"];
  var count = panel.querySelector(".recipient-count");
  var timer = null;
  function refresh() {
    var params = new URLSearchParams();
    names.forEach(function (name) {
      var select = document.getElementById("id_" + name);
      if (!select) return;
      Array.prototype.forEach.call(select.selectedOptions, function (o) { params.append(name, o.value); });
    });
    fetch(panel.getAttribute("data-count-url") + "?" + params.toString(), { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (data) {
        count.setAttribute("data-count", data.count);
        count.textContent = data.count + " sendable recipient" + (data.count === 1 ? "" : "s") + " (not saved yet)";
      })
      .catch(function () { count.textContent = "Could not count the recipients (offline?)."; });
  }
  names.forEach(function (name) {
    var select = document.getElementById("id_" + name);
    if (select) select.addEventListener("change", function () { clearTimeout(timer); timer = setTimeout(refresh, 200); });
  });
})();
