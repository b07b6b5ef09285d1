// featx report: the map, the neighbour panel and the thumbnails of the static sections.
// Hand-written, no library; everything it shows comes from the JSON in #featx-data and is
// put in the page as text (textContent), never as markup.
(function () {
  "use strict";
  var root = document.documentElement;
  var errors = [];
  function fail(msg) {
    errors.push(String(msg));
    root.setAttribute("data-errors", String(errors.length));
    var el = document.getElementById("errors");
    if (el) { el.textContent = "script errors: " + errors.join(" | "); }
  }
  window.addEventListener("error", function (e) { fail(e.message || "error"); });
  document.addEventListener("securitypolicyviolation", function (e) {
    fail("blocked by the page's security policy: " + e.blockedURI);
  });

  var D = JSON.parse(document.getElementById("featx-data").textContent);
  var thumbs = D.thumbs || [];
  var labels = D.labels || {};
  var pts = D.points || [];
  var pointOf = {};
  pts.forEach(function (p, i) { pointOf[p[2]] = i; });

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }
  function labelOf(row) { var l = labels[row]; return l ? l.l : "row " + row; }
  function thumbOfRow(row) {
    var l = labels[row];
    return l && l.t >= 0 ? l.t : -1;
  }

  // thumbnails of the static sections
  Array.prototype.forEach.call(document.querySelectorAll("img[data-t]"), function (img) {
    var t = +img.getAttribute("data-t");
    if (thumbs[t]) { img.src = thumbs[t]; }
  });

  // ---- the map ---------------------------------------------------------
  var canvas = document.getElementById("map");
  var panel = document.getElementById("panel");
  var tip = document.getElementById("tip");
  var selected = -1;
  var images = thumbs.map(function (u) { var im = new Image(); im.src = u; return im; });
  var view = { k: 1, x: 0, y: 0 };
  var showThumbs = true, colourBy = "outlier";
  var size = 0, margin = 40, T = 30;
  var ranks = null;

  function outlierRanks() {
    var order = pts.map(function (p, i) { return i; }).filter(function (i) { return pts[i][4] !== null; });
    order.sort(function (a, b) { return pts[a][4] - pts[b][4]; });
    var r = new Array(pts.length).fill(0.5);
    order.forEach(function (i, j) { r[i] = order.length > 1 ? j / (order.length - 1) : 0.5; });
    return r;
  }
  function ramp(v) {  // most rows grey-blue; the top 5 % of outlier scores towards red
    var a = [150, 165, 180], b = [214, 40, 40], f = v < 0.95 ? 0 : (v - 0.95) / 0.05;
    return "rgb(" + a.map(function (c, i) { return Math.round(c + (b[i] - c) * f); }).join(",") + ")";
  }
  function sx(p) { return view.x + view.k * (margin + p[0] * (size - 2 * margin)); }
  function sy(p) { return view.y + view.k * (margin + (1 - p[1]) * (size - 2 * margin)); }

  function draw() {
    if (!canvas) { return; }
    var ctx = canvas.getContext("2d");
    var dpr = window.devicePixelRatio || 1;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, size, size);
    var t = T * Math.min(2.5, Math.max(1, Math.sqrt(view.k)));
    var nn = selected >= 0 ? (D.nn[selected] || []) : [];
    if (selected >= 0) {
      ctx.strokeStyle = "rgba(31,111,235,.55)";
      ctx.lineWidth = 1.5;
      nn.forEach(function (n) {
        var j = pointOf[n[0]];
        if (j === undefined) { return; }
        ctx.beginPath(); ctx.moveTo(sx(pts[selected]), sy(pts[selected]));
        ctx.lineTo(sx(pts[j]), sy(pts[j])); ctx.stroke();
      });
    }
    var order = pts.map(function (p, i) { return i; });
    if (colourBy === "outlier") { order.sort(function (a, b) { return ranks[a] - ranks[b]; }); }
    order.forEach(function (i) {
      var p = pts[i], x = sx(p), y = sy(p);
      if (x < -t || y < -t || x > size + t || y > size + t) { return; }
      var col = colourBy === "outlier" ? ramp(ranks[i]) : "rgb(70,110,160)";
      var im = p[3] >= 0 ? images[p[3]] : null;
      if (showThumbs && im && im.complete && im.naturalWidth) {
        var s = t / Math.max(im.naturalWidth, im.naturalHeight);
        var w = im.naturalWidth * s, h = im.naturalHeight * s;
        ctx.drawImage(im, x - w / 2, y - h / 2, w, h);
        ctx.strokeStyle = col; ctx.lineWidth = colourBy === "outlier" && ranks[i] >= 0.95 ? 2.5 : 1;
        ctx.strokeRect(x - w / 2, y - h / 2, w, h);
      } else {
        ctx.fillStyle = col;
        ctx.beginPath(); ctx.arc(x, y, 3.5, 0, 2 * Math.PI); ctx.fill();
      }
    });
    if (selected >= 0) {
      ctx.strokeStyle = "#1f6feb"; ctx.lineWidth = 3;
      ctx.strokeRect(sx(pts[selected]) - t / 2 - 3, sy(pts[selected]) - t / 2 - 3, t + 6, t + 6);
    }
  }

  function hit(mx, my) {
    var t = T * Math.min(2.5, Math.max(1, Math.sqrt(view.k))) / 2 + 3, best = -1, bd = Infinity;
    for (var i = 0; i < pts.length; i++) {
      var dx = sx(pts[i]) - mx, dy = sy(pts[i]) - my;
      if (Math.abs(dx) <= t && Math.abs(dy) <= t) {
        var d = dx * dx + dy * dy;
        if (d < bd) { bd = d; best = i; }
      }
    }
    return best;
  }

  function fmt(d) { return d === null ? "" : (+d).toPrecision(4); }

  function showRow(row) {
    var i = pointOf[row];
    if (i !== undefined) { select(i); return; }
    panel.textContent = "";
    panel.appendChild(el("h2", null, "Row " + row));
    var t = thumbOfRow(row);
    if (t >= 0) { var im = el("img", "big"); im.src = thumbs[t]; im.alt = ""; panel.appendChild(im); }
    panel.appendChild(el("div", "path", labelOf(row)));
    panel.appendChild(el("p", "note", "This row is not drawn on the map (only a sample is): no neighbour list."));
    root.setAttribute("data-panel", "row " + row);
  }

  function select(i) {
    selected = i;
    draw();
    var p = pts[i], row = p[2], l = labels[row] || {};
    panel.textContent = "";
    panel.appendChild(el("h2", null, "Row " + row));
    if (p[3] >= 0) { var im = el("img", "big"); im.src = thumbs[p[3]]; im.alt = ""; panel.appendChild(im); }
    else { panel.appendChild(el("p", "note", D.noThumb || "no thumbnail")); }
    var tb = el("table"), keys = l.k || {};
    Object.keys(keys).forEach(function (k) {
      var tr = el("tr"); tr.appendChild(el("th", null, k)); tr.appendChild(el("td", "mono", keys[k])); tb.appendChild(tr);
    });
    if (p[4] !== null) {
      var tr = el("tr"); tr.appendChild(el("th", null, "outlier score"));
      tr.appendChild(el("td", null, fmt(p[4]) + " (distance to neighbour " + D.k + ")")); tb.appendChild(tr);
    }
    panel.appendChild(tb);
    var nn = D.nn[i] || [];
    panel.appendChild(el("h2", null, nn.length + " nearest neighbours (" + D.metric + ")"));
    var ol = el("ol", "nn");
    ol.id = "neighbours";
    nn.forEach(function (n) {
      var li = el("li");
      var t = thumbOfRow(n[0]);
      if (t >= 0) { var im = el("img"); im.src = thumbs[t]; im.alt = ""; li.appendChild(im); }
      else { li.appendChild(el("span", "nothumb")); }
      var tx = el("span", "nntext");
      tx.appendChild(el("span", "path", labelOf(n[0])));
      tx.appendChild(el("br"));
      tx.appendChild(el("span", "dist", "distance " + fmt(n[1])));
      if (n[1] <= D.threshold) { tx.appendChild(el("span", "badge", "near-duplicate")); }
      li.appendChild(tx);
      li.addEventListener("click", function () { showRow(n[0]); });
      ol.appendChild(li);
    });
    panel.appendChild(ol);
    root.setAttribute("data-panel", "row " + row + ": " + nn.length + " neighbours");
    var st = document.getElementById("status");
    if (st) { st.textContent = "map: " + pts.length + " points drawn; panel: row " + row + ", " + nn.length + " neighbours"; }
  }

  function resize() {
    var wrap = canvas.parentNode;
    var avail = Math.max(320, Math.min(760, (wrap.parentNode.clientWidth || 760) - 320));
    size = avail;
    // thumbnails as large as the number of points allows: 64 px for a few, 22 px for thousands
    T = Math.max(22, Math.min(64, Math.round(0.9 * size / Math.sqrt(Math.max(1, pts.length)))));
    margin = T / 2 + 8;   // a picture at the edge of the map is whole
    var dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(size * dpr); canvas.height = Math.round(size * dpr);
    canvas.style.width = size + "px"; canvas.style.height = size + "px";
    draw();
  }

  if (canvas && pts.length) {
    ranks = outlierRanks();
    resize();
    window.addEventListener("resize", resize);
    var drag = null;
    canvas.addEventListener("mousemove", function (e) {
      var r = canvas.getBoundingClientRect(), mx = e.clientX - r.left, my = e.clientY - r.top;
      if (drag) {
        view.x = drag.vx + (mx - drag.mx); view.y = drag.vy + (my - drag.my); drag.moved = true; draw(); return;
      }
      var i = hit(mx, my);
      if (i < 0) { tip.style.display = "none"; return; }
      tip.textContent = labelOf(pts[i][2]) + (pts[i][4] !== null ? "  ·  outlier score " + fmt(pts[i][4]) : "");
      tip.style.display = "block";
      tip.style.left = Math.min(mx + 14, size - 200) + "px"; tip.style.top = (my + 14) + "px";
    });
    canvas.addEventListener("mouseleave", function () { tip.style.display = "none"; drag = null; });
    canvas.addEventListener("mousedown", function (e) {
      var r = canvas.getBoundingClientRect();
      drag = { mx: e.clientX - r.left, my: e.clientY - r.top, vx: view.x, vy: view.y, moved: false };
    });
    canvas.addEventListener("mouseup", function (e) {
      var r = canvas.getBoundingClientRect(), moved = drag && drag.moved;
      drag = null;
      if (moved) { return; }
      var i = hit(e.clientX - r.left, e.clientY - r.top);
      if (i >= 0) { select(i); }
    });
    canvas.addEventListener("wheel", function (e) {
      e.preventDefault();
      var r = canvas.getBoundingClientRect(), mx = e.clientX - r.left, my = e.clientY - r.top;
      var f = e.deltaY < 0 ? 1.25 : 0.8, k = Math.min(40, Math.max(1, view.k * f));
      f = k / view.k;
      view.x = mx - (mx - view.x) * f; view.y = my - (my - view.y) * f; view.k = k;
      draw();
    }, { passive: false });
    var cb = document.getElementById("show-thumbs");
    if (cb) { cb.addEventListener("change", function () { showThumbs = cb.checked; draw(); }); }
    var cs = document.getElementById("colour-by");
    if (cs) { cs.addEventListener("change", function () { colourBy = cs.value; draw(); }); }
    var rb = document.getElementById("reset-view");
    if (rb) { rb.addEventListener("click", function () { view = { k: 1, x: 0, y: 0 }; draw(); }); }
    // one redraw per frame however many thumbnails finish decoding in it
    var pending = false;
    var later = function () {
      if (pending) { return; }
      pending = true;
      (window.requestAnimationFrame || setTimeout)(function () { pending = false; draw(); });
    };
    images.forEach(function (im) { if (!im.complete) { im.addEventListener("load", later); } });
    root.setAttribute("data-map", "drawn " + pts.length);
  } else {
    root.setAttribute("data-map", "none");
  }

  Array.prototype.forEach.call(document.querySelectorAll("[data-row]"), function (e) {
    e.addEventListener("click", function () {
      showRow(+e.getAttribute("data-row"));
      var m = document.getElementById("map-section");
      if (m && m.scrollIntoView) { m.scrollIntoView(); }
    });
  });

  // for tests and the curious: where a point is on screen (viewport coordinates), read-only
  window.featxReport = Object.freeze({
    points: pts.length,
    screen: function (i) {
      var r = canvas.getBoundingClientRect();
      return [r.left + sx(pts[i]), r.top + sy(pts[i])];
    },
    row: function (i) { return pts[i][2]; }
  });

  var want = /[#&]row=(\d+)/.exec(location.hash || "");
  if (want && pts.length) { showRow(+want[1]); }
  var st = document.getElementById("status");
  if (st && root.getAttribute("data-panel") === null) {
    st.textContent = "map: " + (pts.length ? pts.length + " points drawn" : "none") + "; click a point";
  }
  root.setAttribute("data-status", errors.length ? "errors" : "ok");
})();
