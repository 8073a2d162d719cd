/* The menu button of narrow screens. The navigation collapses only under html.js (set in
   base.html's head), so without JavaScript it simply stays open. */
(function () {
  var button = document.querySelector(".nav-toggle");
  var menu = document.getElementById("topnav");
  if (!button || !menu) return;
  button.addEventListener("click", function () {
    var open = button.getAttribute("aria-expanded") !== "true";
    button.setAttribute("aria-expanded", String(open));
    menu.classList.toggle("open", open);
  });
})();
