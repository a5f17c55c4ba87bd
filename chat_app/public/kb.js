/*
 * kb: a citation panel opens when the reader clicks a citation, and shows that one.
 *
 * Since Chainlit 2.11 the element side panel also opens by itself whenever the
 * chat's elements change (after each answer, on reload, on resume), listing every
 * side element of the chat under the name of the last one: Chainlit issue #2979,
 * fix proposed in PR #2982. kb's side elements are the citation panels "[1]", "[2]"...
 * of every answer, so that panel reads as if "[1]" opened the [1] of every answer.
 *
 * This closes a side panel that appeared without a click on a citation link, or
 * that lists more than one element (a click opens exactly one). It uses the ids
 * Chainlit's own end-to-end tests rely on (#side-view-title, #side-view-content,
 * a.element-link). Remove it when Chainlit stops opening the panel by itself.
 * (It would also close panels an app opens itself with cl.ElementSidebar: kb has none.)
 */
(function () {
  "use strict";
  var CLICK_WINDOW_MS = 2000;
  var clickedAt = -Infinity;
  var wasOpen = false;

  document.addEventListener(
    "click",
    function (event) {
      var target = event.target;
      if (target && target.closest && target.closest("a.element-link")) {
        clickedAt = Date.now();
      }
    },
    true
  );

  function closeButton(title) {
    var dialog = title.closest("[role=dialog]"); // the small-screen sheet
    return dialog ? dialog.querySelector("button") : title.querySelector("button");
  }

  function check() {
    var title = document.getElementById("side-view-title");
    var content = document.getElementById("side-view-content");
    if (!title || !content) {
      wasOpen = false;
      return;
    }
    var opened = !wasOpen;
    wasOpen = true;
    var clicked = Date.now() - clickedAt < CLICK_WINDOW_MS;
    if (content.children.length > 1 || (opened && !clicked)) {
      var button = closeButton(title);
      if (button) {
        wasOpen = false;
        button.click();
      }
    }
  }

  new MutationObserver(check).observe(document.body, { childList: true, subtree: true });
})();
