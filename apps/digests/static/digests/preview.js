// Fit the preview frame to the mail's height (the mail itself has no script).
(function () {
  var frame = document.getElementById("digest-frame");
  if (!frame) return;
  function fit() {
    try {
      var doc = frame.contentDocument;
      if (doc && doc.body) frame.style.height = (doc.documentElement.scrollHeight + 8) + "px";
    } catch (e) { /* not readable: keep the CSS height */ }
  }
  frame.addEventListener("load", fit);
  fit();
})();
