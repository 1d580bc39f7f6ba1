// synthmed reader study: confirmation prompts and the image viewer.
// The viewer draws the served pixels on a canvas through a window/level lookup table (true W/L on the
// pixel values: out = (v - (L - W/2)) * 255 / W, clipped), magnifies with nearest-neighbour by default,
// offers 1:1 (one image pixel per screen pixel), and keeps W/L, invert, zoom mode and smoothing across
// cases (localStorage). Drag convention (as in radiology workstations): right = wider window (less
// contrast), up = higher level (darker); shift-drag, right-drag or the W/L drag mode (touch) adjust it.
"use strict";

document.addEventListener("submit", (event) => {
  const message = event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});

(function viewer() {
  const stage = document.getElementById("stage");
  const img = document.getElementById("case-image");
  const canvas = document.getElementById("case-canvas");
  if (!stage || !img || !canvas) return;
  const form = document.getElementById("answer-form");
  const levelInput = document.getElementById("level");
  const windowInput = document.getElementById("window");
  const readout = document.getElementById("readout");
  const KEY = "synthmed-viewer-v2";
  const PRESETS = { full: [255, 127.5], bright: [128, 191.5], dark: [128, 63.5] };
  const defaults = { window: 255, level: 127.5, invert: false, zoom: "fit", factor: 1, smooth: false, dragWL: false };
  let saved = {};
  try { saved = JSON.parse(window.localStorage.getItem(KEY) || "{}"); } catch (e) { saved = {}; }
  const state = Object.assign({}, defaults, saved);
  const view = { scale: 1, x: 0, y: 0 };
  const ctx = canvas.getContext("2d");
  let source = null;  // ImageData of the served pixels

  function save() {
    const { window: w, level, invert, zoom, factor, smooth, dragWL } = state;
    try { window.localStorage.setItem(KEY, JSON.stringify({ window: w, level, invert, zoom, factor, smooth, dragWL })); }
    catch (e) { /* private mode: settings last for this page only */ }
  }
  function fitScale() {
    if (!img.naturalWidth) return 1;
    return Math.min(stage.clientWidth / img.naturalWidth, stage.clientHeight / img.naturalHeight) * 0.98;
  }
  function oneToOne() { return 1 / (window.devicePixelRatio || 1); }
  function scaleFor() {
    if (state.zoom === "1:1") return oneToOne();
    return fitScale() * (state.zoom === "fit" ? 1 : state.factor);
  }
  function render() {
    if (!source) return;
    const lo = state.level - state.window / 2, k = 255 / Math.max(state.window, 1e-6);
    const lut = new Uint8ClampedArray(256);
    for (let v = 0; v < 256; v++) {
      const out = Math.round((v - lo) * k);
      lut[v] = state.invert ? 255 - Math.min(255, Math.max(0, out)) : out;
    }
    const out = ctx.createImageData(source.width, source.height);
    const src = source.data, dst = out.data;
    for (let i = 0; i < src.length; i += 4) {
      dst[i] = lut[src[i]]; dst[i + 1] = lut[src[i + 1]]; dst[i + 2] = lut[src[i + 2]]; dst[i + 3] = 255;
    }
    ctx.putImageData(out, 0, 0);
  }
  function place() {
    const w = canvas.width * view.scale, h = canvas.height * view.scale;
    canvas.style.width = w + "px";
    canvas.style.height = h + "px";
    canvas.style.transform = `translate(${view.x - w / 2}px, ${view.y - h / 2}px)`;
    canvas.classList.toggle("smooth", state.smooth);
    const zoomText = state.zoom === "1:1" ? "1:1" : `${(view.scale / oneToOne()).toFixed(1)}×`;
    readout.textContent = `Zoom ${zoomText} · W ${state.window} L ${state.level}` + (state.invert ? " · inverted" : "")
      + (state.smooth ? " · smooth" : " · pixels");
    levelInput.value = state.level; windowInput.value = state.window;
    document.querySelectorAll("[data-toggle]").forEach((b) => b.setAttribute("aria-pressed", String(!!state[b.dataset.toggle])));
  }
  function update({ pixels = true } = {}) { if (pixels) render(); place(); save(); }
  function rescale() { view.scale = scaleFor(); view.x = 0; view.y = 0; place(); }
  function setWL(width, level) {
    state.window = Math.round(Math.min(Math.max(width, 1), 512) * 2) / 2;
    state.level = Math.round(Math.min(Math.max(level, -128), 383.5) * 2) / 2;
    update();
  }
  function autoWL() {
    let lo = 255, hi = 0;
    for (let i = 0; i < source.data.length; i += 4) { lo = Math.min(lo, source.data[i]); hi = Math.max(hi, source.data[i]); }
    setWL(Math.max(hi - lo, 1), (hi + lo) / 2);
  }
  function zoomAt(factor, cx, cy) {
    const next = Math.min(Math.max(view.scale * factor, fitScale() * 0.25), Math.max(fitScale(), oneToOne()) * 32);
    const k = next / view.scale;
    view.x = cx - (cx - view.x) * k; view.y = cy - (cy - view.y) * k; view.scale = next;
    state.zoom = "factor"; state.factor = next / fitScale();
    place(); save();
  }
  function resetAll() { Object.assign(state, { window: 255, level: 127.5, invert: false, zoom: "fit", factor: 1 }); render(); rescale(); save(); }
  function fullscreen() {
    const target = document.getElementById("viewer");
    if (document.fullscreenElement) document.exitFullscreen(); else target.requestFullscreen?.();
  }
  function loaded() {
    canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
    const scratch = document.createElement("canvas");
    scratch.width = img.naturalWidth; scratch.height = img.naturalHeight;
    const sctx = scratch.getContext("2d");
    sctx.drawImage(img, 0, 0);
    source = sctx.getImageData(0, 0, scratch.width, scratch.height);
    render(); rescale(); stage.dataset.ready = "1";
  }

  img.addEventListener("load", loaded);
  if (img.complete && img.naturalWidth) loaded();
  window.addEventListener("resize", rescale);
  document.addEventListener("fullscreenchange", () => setTimeout(rescale, 50));
  levelInput.addEventListener("input", () => setWL(state.window, +levelInput.value));
  windowInput.addEventListener("input", () => setWL(+windowInput.value, state.level));

  stage.addEventListener("wheel", (e) => {
    e.preventDefault();
    const r = stage.getBoundingClientRect();
    zoomAt(e.deltaY < 0 ? 1.15 : 1 / 1.15, e.clientX - r.left - r.width / 2, e.clientY - r.top - r.height / 2);
  }, { passive: false });

  let drag = null;
  stage.addEventListener("contextmenu", (e) => e.preventDefault());
  stage.addEventListener("pointerdown", (e) => {
    drag = { x: e.clientX, y: e.clientY, wl: state.dragWL || e.shiftKey || e.button === 2, width: state.window,
             level: state.level, vx: view.x, vy: view.y };
    stage.setPointerCapture?.(e.pointerId); stage.classList.add("dragging");
  });
  stage.addEventListener("pointermove", (e) => {
    if (!drag) return;
    const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
    if (drag.wl) setWL(drag.width + dx, drag.level - dy);  // right: wider window; up: higher level
    else { view.x = drag.vx + dx; view.y = drag.vy + dy; place(); }
  });
  const endDrag = () => { drag = null; stage.classList.remove("dragging"); };
  stage.addEventListener("pointerup", endDrag);
  stage.addEventListener("pointercancel", endDrag);
  stage.addEventListener("dblclick", resetAll);

  const actions = {
    "zoom-in": () => zoomAt(1.25, 0, 0), "zoom-out": () => zoomAt(0.8, 0, 0),
    fit: () => { state.zoom = "fit"; state.factor = 1; rescale(); save(); },
    "one-to-one": () => { state.zoom = "1:1"; rescale(); save(); },
    invert: () => { state.invert = !state.invert; update(); },
    smooth: () => { state.smooth = !state.smooth; update({ pixels: false }); },
    "drag-wl": () => { state.dragWL = !state.dragWL; update({ pixels: false }); },
    auto: autoWL, reset: resetAll, fullscreen,
  };
  document.querySelectorAll("[data-action]").forEach((button) => button.addEventListener("click", () => {
    const preset = PRESETS[button.dataset.action];
    if (preset) setWL(...preset); else actions[button.dataset.action]?.();
  }));
  window.synthmedViewer = {  // for the browser tests: what is on screen and what was served
    state, view, pixel: (x, y) => Array.from(ctx.getImageData(x, y, 1, 1).data.slice(0, 3)),
    served: (x, y) => Array.from(source.data.slice((y * source.width + x) * 4, (y * source.width + x) * 4 + 3)),
  };

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
    else if (key === "+" || key === "=") actions["zoom-in"]();
    else if (key === "-") actions["zoom-out"]();
    else if (key === "0") actions.fit();
    else if (key === "p") actions["one-to-one"]();
    else if (key === "a") autoWL();
    else if (key === "i") actions.invert();
    else if (key === "s") actions.smooth();
    else if (key === "v") fullscreen();
  });
})();
