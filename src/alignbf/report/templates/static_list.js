// The exported list filters and sorts in the browser from the same query parameters
// the served list reads, so its links work from disk.
(function () {
  var query = new URLSearchParams(window.location.search);
  var form = document.getElementById("filters");
  query.forEach(function (value, key) {
    if (form.elements[key]) { form.elements[key].value = value; }
  });
  var filters = ["language", "alignment", "individuation", "model", "status"];
  var body = document.querySelector("#sims tbody");
  var rows = Array.prototype.slice.call(body.rows);
  var shown = 0;
  rows.forEach(function (row) {
    var keep = filters.every(function (f) { return !query.get(f) || row.dataset[f] === query.get(f); });
    row.hidden = !keep;
    if (keep) { shown += 1; }
  });
  document.getElementById("shown").textContent = shown;
  var sort = query.get("sort") || "idx";
  var order = query.get("order") || (sort === "idx" ? "asc" : "desc");
  var sign = order === "desc" ? -1 : 1;
  function value(row) { var v = parseFloat(row.dataset[sort]); return isNaN(v) ? null : v; }
  rows.sort(function (a, b) {
    var x = value(a), y = value(b);
    if (x === null || y === null) { return (x === null) - (y === null); }
    return sign * (x - y);
  });
  rows.forEach(function (row) { body.appendChild(row); });
})();
