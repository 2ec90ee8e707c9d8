(function () {
  "use strict";
  // The theme follows the system (prefers-color-scheme) until the reader
  // picks light or dark with the button; the choice is kept in localStorage.
  var root = document.documentElement;
  var key = "gantry-report-theme";
  var modes = ["auto", "light", "dark"];
  var mode = "auto";
  try {
    mode = localStorage.getItem(key) || "auto";
  } catch (e) {}
  function apply() {
    if (mode === "light" || mode === "dark") {
      root.setAttribute("data-theme", mode);
    } else {
      mode = "auto";
      root.removeAttribute("data-theme");
    }
    var button = document.getElementById("theme");
    if (button) {
      button.textContent = "Theme: " + mode;
    }
  }
  apply();
  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("theme");
    apply();
    button.hidden = false;
    button.addEventListener("click", function () {
      mode = modes[(modes.indexOf(mode) + 1) % modes.length];
      apply();
      try {
        localStorage.setItem(key, mode);
      } catch (e) {}
    });
  });
})();
