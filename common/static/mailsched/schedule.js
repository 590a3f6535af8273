// The schedule form's live echo and next runs. It sends the form's fields to the admin's preview URL
// (GET, read only) and shows what the server answers: the same parsing the form's POST and the API use,
// so the browser never guesses time zones itself. Without script the form still works; the echo then
// shows after a submit.
(function () {
  "use strict";
  var form = document.querySelector("form.schedule-form");
  if (!form) return;
  var box = document.getElementById("ms-schedule-echo");
  var url = form.getAttribute("data-preview-url");
  var timer = null, seq = 0;

  function render(data) {
    box.textContent = "";
    if (!data.ok) {
      var title = document.createElement("p");
      title.className = "ms-error";
      title.textContent = "Not yet a schedule:";
      box.appendChild(title);
      var errors = document.createElement("ul");
      errors.className = "ms-error ms-echo-errors";
      Object.keys(data.errors).forEach(function (field) {
        data.errors[field].forEach(function (message) {
          var li = document.createElement("li");
          li.textContent = (field === "__all__" ? "" : field.replace(/_/g, " ") + ": ") + message;
          errors.appendChild(li);
        });
      });
      box.appendChild(errors);
      return;
    }
    var head = document.createElement("p");
    head.className = "ms-echo";
    head.textContent = data.runs.length > 1 ? "Next " + data.runs.length + " runs:" : "Sends " + data.runs[0];
    box.appendChild(head);
    if (data.runs.length > 1) {
      var list = document.createElement("ol");
      list.className = "ms-runs";
      data.runs.forEach(function (run) {
        var li = document.createElement("li");
        li.textContent = run;
        list.appendChild(li);
      });
      box.appendChild(list);
    }
  }

  function refresh() {
    var params = new URLSearchParams(new FormData(form));
    params.delete("csrfmiddlewaretoken");
    var mine = ++seq;
    fetch(url + "?" + params.toString(), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (data) { if (mine === seq) render(data); })
      .catch(function () { box.textContent = "Could not check the schedule (offline?)."; });
  }

  function soon() { clearTimeout(timer); timer = setTimeout(refresh, 250); }

  // Show only the fields of the chosen kind of schedule.
  function toggle() {
    var kind = (form.querySelector("input[name=schedule_type]:checked") || {}).value;
    form.querySelectorAll("[data-group]").forEach(function (fieldset) {
      var group = fieldset.getAttribute("data-group");
      fieldset.hidden = (group === "Recurring" && kind !== "recurring");
    });
    var date = form.querySelector(".field-date");
    if (date) date.hidden = kind === "recurring";
  }

  // Type to narrow the zone list ("jak" keeps Asia/Jakarta).
  var filter = document.getElementById("ms-zone-filter");
  var select = document.getElementById("id_timezone");
  if (filter && select) {
    filter.addEventListener("input", function () {
      var needle = filter.value.toLowerCase().replace(/ /g, "_");
      var first = null;
      select.querySelectorAll("option").forEach(function (option) {
        var match = !needle || option.value.toLowerCase().indexOf(needle) !== -1;
        option.hidden = !match;
        if (match && !first) first = option;
      });
      if (needle && first && select.selectedOptions[0] && select.selectedOptions[0].hidden) {
        select.value = first.value;
        soon();
      }
    });
  }

  form.addEventListener("input", soon);
  form.addEventListener("change", function () { toggle(); soon(); });
  toggle();
  refresh();
})();
