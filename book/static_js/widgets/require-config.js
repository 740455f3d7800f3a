// Loaded after require.js and before embed-amd.js on pages with ipywidgets (see _config.yml).
(function () {
  var here = document.currentScript.src.replace(/[?#].*$/, "").replace(/[^\/]*$/, "");

  // 1. Fonts from this folder, not a CDN.  The html-manager reads its webpack public path from
  //    this global; the widget modules derive theirs from their require.js module URI, which
  //    the path config maps to this folder too.
  window.__jupyter_widgets_assets_path__ = here;
  var local = here + "embed-amd";
  window.require.config({
    paths: {
      "@jupyter-widgets/base": local,
      "@jupyter-widgets/controls": local,
      "@jupyter-widgets/html-manager": local,
      "@jupyter-widgets/html-manager/dist/libembed-amd": local,
    },
  });

  // 2. The widgets typeset their labels with MathJax 2's API (MathJax.Hub.Queue); the book loads
  //    MathJax 3.  Provide that one call on top of MathJax 3, both on the configuration object
  //    (before MathJax 3 has started) and on MathJax 3 itself (once it is ready).
  var pending = [];  // labels queued before MathJax 3 was ready
  var typeset = function (els) {
    window.MathJax.typesetPromise(els).catch(function (e) { console.warn(e); });
  };
  var hub = {
    Queue: function (job) {
      var el = job && job[2];
      if (!el) return;
      // widget labels write inline math as $...$; the book's MathJax only knows \(...\)
      if (el.children.length === 0 && el.textContent.indexOf("$") >= 0) {
        el.textContent = el.textContent.replace(/\$([^$]+)\$/g, "\\($1\\)");
      }
      if (window.MathJax && window.MathJax.typesetPromise) typeset([el]);
      else pending.push(el);
    },
  };
  var config = (window.MathJax = window.MathJax || {});
  if (!config.version) {  // still the configuration object: MathJax 3 has not started
    config.Hub = hub;
    config.startup = config.startup || {};
    var ready = config.startup.ready;
    config.startup.ready = function () {
      (ready || window.MathJax.startup.defaultReady)();
      window.MathJax.Hub = hub;
      window.MathJax.startup.promise.then(function () {
        if (pending.length) typeset(pending.splice(0));
      });
    };
  } else if (!config.Hub) {
    config.Hub = hub;
  }
})();
