// synthmed reader study: confirmation prompts and the image viewer (zoom, pan, window/level, full screen, keys).
"use strict";

document.addEventListener("submit", (event) => {
  const message = event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});

(function viewer() {
  const stage = document.getElementById("stage");
  const img = document.getElementById("case-image");
  if (!stage || !img) return;
  const form = document.getElementById("answer-form");
  const level = document.getElementById("level");
  const windowWidth = document.getElementById("window");
  const readout = document.getElementById("readout");
  const view = { scale: 1, x: 0, y: 0, invert: false };

  function fitScale() {
    if (!img.naturalWidth) return 1;
    return Math.min(stage.clientWidth / img.naturalWidth, stage.clientHeight / img.naturalHeight) * 0.98;
  }
  function apply() {
    const w = img.naturalWidth * view.scale, h = img.naturalHeight * view.scale;
    img.style.width = w + "px";
    img.style.height = h + "px";
    img.style.transform = `translate(${view.x - w / 2}px, ${view.y - h / 2}px)`;
    img.style.filter = `brightness(${level.value / 100}) contrast(${windowWidth.value / 100})` + (view.invert ? " invert(1)" : "");
    readout.textContent = `Zoom ${(view.scale / fitScale()).toFixed(1)}× · L ${level.value}% · W ${windowWidth.value}%`;
  }
  function reset() { view.scale = fitScale(); view.x = 0; view.y = 0; apply(); }
  function zoomAt(factor, cx, cy) {
    const next = Math.min(Math.max(view.scale * factor, fitScale() * 0.25), fitScale() * 16);
    const k = next / view.scale;
    view.x = cx - (cx - view.x) * k; view.y = cy - (cy - view.y) * k; view.scale = next; apply();
  }
  function resetWindow() { level.value = 100; windowWidth.value = 100; view.invert = false; apply(); }
  function fullscreen() {
    const target = document.getElementById("viewer");
    if (document.fullscreenElement) document.exitFullscreen(); else target.requestFullscreen?.();
  }

  img.addEventListener("load", reset);
  if (img.complete) reset();
  window.addEventListener("resize", reset);
  document.addEventListener("fullscreenchange", () => setTimeout(reset, 50));
  level.addEventListener("input", apply);
  windowWidth.addEventListener("input", apply);

  stage.addEventListener("wheel", (e) => {
    e.preventDefault();
    const r = stage.getBoundingClientRect();
    zoomAt(e.deltaY < 0 ? 1.15 : 1 / 1.15, e.clientX - r.left - r.width / 2, e.clientY - r.top - r.height / 2);
  }, { passive: false });

  let drag = null;
  stage.addEventListener("contextmenu", (e) => e.preventDefault());
  stage.addEventListener("pointerdown", (e) => {
    drag = { x: e.clientX, y: e.clientY, wl: e.shiftKey || e.button === 2, level: +level.value, width: +windowWidth.value,
             vx: view.x, vy: view.y };
    stage.setPointerCapture(e.pointerId); stage.classList.add("dragging");
  });
  stage.addEventListener("pointermove", (e) => {
    if (!drag) return;
    const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
    if (drag.wl) { windowWidth.value = drag.width + dx / 2; level.value = drag.level - dy / 2; apply(); }
    else { view.x = drag.vx + dx; view.y = drag.vy + dy; apply(); }
  });
  const endDrag = () => { drag = null; stage.classList.remove("dragging"); };
  stage.addEventListener("pointerup", endDrag);
  stage.addEventListener("pointercancel", endDrag);
  stage.addEventListener("dblclick", () => { reset(); resetWindow(); });

  document.querySelectorAll("[data-action]").forEach((button) => button.addEventListener("click", () => {
    const action = button.dataset.action;
    if (action === "zoom-in") zoomAt(1.25, 0, 0);
    if (action === "zoom-out") zoomAt(0.8, 0, 0);
    if (action === "reset") { reset(); resetWindow(); }
    if (action === "invert") { view.invert = !view.invert; apply(); }
    if (action === "fullscreen") fullscreen();
  }));

  function choose(name, value) {
    const input = form && form.querySelector(`input[name="${name}"][value="${value}"]`);
    if (input && !input.disabled) input.checked = true;
  }
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey && e.key === "Enter" && form && form.querySelector("button[type=submit]")) {
      form.requestSubmit();
      return;
    }
    const typing = ["TEXTAREA", "INPUT", "SELECT"].includes(e.target.tagName) && e.target.type !== "radio" && e.target.type !== "range";
    if (typing) { if (e.key === "Escape") e.target.blur(); return; }
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    const key = e.key.toLowerCase();
    const calls = { r: "real", f: "fake", u: "unsure" };
    if (calls[key]) choose("call", calls[key]);
    else if (/^[1-5]$/.test(key)) choose("confidence", key);
    else if (key === "enter") {
      e.preventDefault();
      if (form && form.querySelector("button[type=submit]")) form.requestSubmit();
      else document.getElementById("next-link")?.click();  // locked (e.g. truth revealed): move on
    }
    else if (key === "arrowleft") document.getElementById("prev-link")?.click();
    else if (key === "arrowright") document.getElementById("next-link")?.click();
    else if (key === "+" || key === "=") zoomAt(1.25, 0, 0);
    else if (key === "-") zoomAt(0.8, 0, 0);
    else if (key === "0") { reset(); resetWindow(); }
    else if (key === "i") { view.invert = !view.invert; apply(); }
    else if (key === "v") fullscreen();
  });
})();
