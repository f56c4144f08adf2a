// Progressive enhancement only: copy buttons for the bundle page's commands. Without
// JavaScript the buttons stay hidden and the commands remain selectable text.
document.querySelectorAll("button.copy[data-copy]").forEach(function (b) {
  b.hidden = false;
  b.addEventListener("click", function () {
    var el = document.getElementById(b.getAttribute("data-copy"));
    if (!el || !navigator.clipboard) { return; }
    navigator.clipboard.writeText(el.textContent).then(function () {
      b.textContent = "Copied";
      setTimeout(function () { b.textContent = "Copy"; }, 1500);
    });
  });
});
