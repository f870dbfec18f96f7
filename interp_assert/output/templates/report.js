(function () {
  "use strict";
  var table = document.getElementById("summary-table");
  if (!table) { return; }
  var body = table.tBodies[0];
  var status = document.getElementById("status-filter");
  var text = document.getElementById("text-filter");
  var shown = document.getElementById("shown-count");

  function keep(row) {
    var want = status.value, verdict = row.getAttribute("data-verdict");
    var byStatus = want === "all" ||
      (want === "problems" ? row.getAttribute("data-fails-run") === "true" :
       want === "not-holds" ? verdict !== "holds" : verdict === want);
    var query = text.value.trim().toLowerCase();
    return byStatus && (!query || row.textContent.toLowerCase().indexOf(query) >= 0);
  }

  function apply() {
    var rows = body.rows, n = 0;
    for (var i = 0; i < rows.length; i++) {
      var visible = keep(rows[i]);
      rows[i].hidden = !visible;
      if (visible) { n++; }
    }
    shown.textContent = n + " of " + rows.length + " shown";
  }

  function key(row, index, numeric) {
    var cell = row.cells[index];
    var raw = cell.hasAttribute("data-key") ? cell.getAttribute("data-key") : cell.textContent;
    if (numeric) { return raw === "" ? NaN : parseFloat(raw); }
    return raw.trim().toLowerCase();
  }

  var headers = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(headers, function (th, index) {
    th.tabIndex = 0;
    function sort() {
      var ascending = th.getAttribute("aria-sort") !== "ascending";
      var numeric = th.getAttribute("data-sort") === "number";
      Array.prototype.forEach.call(headers, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a, index, numeric), y = key(b, index, numeric);
        if (numeric) {  // rows without a number last, whichever the direction
          if (isNaN(x) || isNaN(y)) { return isNaN(x) - isNaN(y); }
          return ascending ? x - y : y - x;
        }
        var order = x.localeCompare(y, undefined, {numeric: true});
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    }
    th.addEventListener("click", sort);
    th.addEventListener("keydown", function (e) { if (e.key === "Enter") { sort(); } });
  });

  Array.prototype.forEach.call(document.querySelectorAll("a.pill[data-status]"), function (a) {
    a.addEventListener("click", function () {
      status.value = a.getAttribute("data-status");
      apply();
    });
  });
  status.addEventListener("change", apply);
  text.addEventListener("input", apply);
  apply();
})();
