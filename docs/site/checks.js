// Petal site self-check, loaded first by every page. With `?check` in the address it
// records script errors, console errors and failed resource loads, and once the page has
// loaded writes them with every image's status into <pre id="site-check"> for the
// browser test (`cargo xtask site-test`) to read, with the page's full height for its
// screenshots. Without `?check` it only records.
"use strict";
window.petalCheck = (function () {
  const errors = [];
  const extra = {};
  window.addEventListener(
    "error",
    function (event) {
      const target = event.target;
      if (target && target !== window && (target.src || target.href)) {
        errors.push("failed to load " + (target.src || target.href));
      } else {
        errors.push("error: " + event.message + " at " + event.filename + ":" + event.lineno);
      }
    },
    true
  );
  window.addEventListener("unhandledrejection", function (event) {
    errors.push("unhandled rejection: " + event.reason);
  });
  const consoleError = console.error.bind(console);
  console.error = function (...args) {
    errors.push("console.error: " + args.join(" "));
    consoleError(...args);
  };
  function images() {
    return Array.from(document.images).map(function (img) {
      return {
        src: img.getAttribute("src"),
        ok: img.complete && img.naturalWidth > 0,
      };
    });
  }
  function report() {
    const pre = document.createElement("pre");
    pre.id = "site-check";
    pre.hidden = true;
    pre.textContent = JSON.stringify({
      errors: errors,
      images: images(),
      height: document.documentElement.scrollHeight,
      extra: extra,
    });
    document.body.appendChild(pre);
  }
  if (new URLSearchParams(location.search).has("check")) {
    window.addEventListener("load", function () {
      // After the page's own load handlers (the explainer's self-test runs in one).
      setTimeout(report, 0);
    });
  }
  return { errors: errors, extra: extra };
})();
