// The CNN explainer: the MNIST network's forward pass in plain JavaScript, on the
// weights `cargo xtask docs` exported to model.js (window.PETAL_EXPLAINER). The ops
// follow Petal's: NHWC activations, HWIO kernels, (in, out) dense weights, zero padding
// as exported, max pooling, NHWC flattening, softmax over the last layer's logits.
"use strict";

// ---- the forward pass ----------------------------------------------------------------

function decodeBytes(base64) {
  const text = atob(base64);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

function decodeF32(base64) {
  const bytes = decodeBytes(base64);
  const view = new DataView(bytes.buffer);
  const out = new Float32Array(bytes.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(4 * i, true);
  return out;
}

function conv2d(x, shape, layer, p) {
  const [h, w, cin] = shape;
  const [kh, kw, , cout] = p.kernel.shape;
  const [oh, ow] = layer.output_shape;
  const [top, , left] = layer.pad;
  const k = p.kernel.values;
  const bias = p.bias ? p.bias.values : null;
  const out = new Float32Array(oh * ow * cout);
  const acc = new Float64Array(cout);
  for (let oy = 0; oy < oh; oy++) {
    for (let ox = 0; ox < ow; ox++) {
      for (let co = 0; co < cout; co++) acc[co] = bias ? bias[co] : 0;
      for (let ky = 0; ky < kh; ky++) {
        const iy = oy + ky - top;
        if (iy < 0 || iy >= h) continue;
        for (let kx = 0; kx < kw; kx++) {
          const ix = ox + kx - left;
          if (ix < 0 || ix >= w) continue;
          for (let ci = 0; ci < cin; ci++) {
            const v = x[(iy * w + ix) * cin + ci];
            if (v === 0) continue;
            const base = ((ky * kw + kx) * cin + ci) * cout;
            for (let co = 0; co < cout; co++) acc[co] += v * k[base + co];
          }
        }
      }
      const o = (oy * ow + ox) * cout;
      for (let co = 0; co < cout; co++) {
        out[o + co] = layer.relu && acc[co] < 0 ? 0 : acc[co];
      }
    }
  }
  return out;
}

function batchNorm(x, layer, p) {
  const c = p.gamma.values.length;
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const j = i % c;
    const scale = p.gamma.values[j] / Math.sqrt(p.moving_variance.values[j] + layer.epsilon);
    out[i] = (x[i] - p.moving_mean.values[j]) * scale + p.beta.values[j];
  }
  return out;
}

function maxPool(x, shape, layer) {
  const [, w, c] = shape;
  const [oh, ow] = layer.output_shape;
  const s = layer.size;
  const out = new Float32Array(oh * ow * c);
  for (let oy = 0; oy < oh; oy++) {
    for (let ox = 0; ox < ow; ox++) {
      for (let ch = 0; ch < c; ch++) {
        let best = -Infinity;
        for (let dy = 0; dy < s; dy++) {
          for (let dx = 0; dx < s; dx++) {
            best = Math.max(best, x[((oy * s + dy) * w + ox * s + dx) * c + ch]);
          }
        }
        out[(oy * ow + ox) * c + ch] = best;
      }
    }
  }
  return out;
}

function dense(x, layer, p) {
  const [n, units] = p.kernel.shape;
  const k = p.kernel.values;
  const acc = new Float64Array(units);
  if (p.bias) for (let u = 0; u < units; u++) acc[u] = p.bias.values[u];
  for (let i = 0; i < n; i++) {
    const v = x[i];
    if (v === 0) continue;
    const base = i * units;
    for (let u = 0; u < units; u++) acc[u] += v * k[base + u];
  }
  const out = new Float32Array(units);
  for (let u = 0; u < units; u++) out[u] = layer.relu && acc[u] < 0 ? 0 : acc[u];
  return out;
}

function relu(x) {
  return x.map((v) => (v < 0 ? 0 : v));
}

function softmax(logits) {
  const max = Math.max(...logits);
  const exps = Array.from(logits, (l) => Math.exp(l - max));
  const total = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / total);
}

/** Runs the network on one image; returns every layer's output and the probabilities. */
function forward(model, pixels) {
  let x = pixels;
  let shape = model.input_shape;
  const outputs = [];
  for (const layer of model.layers) {
    const p = layer.params;
    switch (layer.op) {
      case "conv2d": x = conv2d(x, shape, layer, p); break;
      case "batch_norm": x = batchNorm(x, layer, p); break;
      case "relu": x = relu(x); break;
      case "max_pool": x = maxPool(x, shape, layer); break;
      case "flatten": break;
      case "dense": x = dense(x, layer, p); break;
      default: throw new Error("model.js has a layer op this page cannot run: " + layer.op);
    }
    shape = layer.output_shape;
    outputs.push({ layer: layer, values: x });
  }
  const probabilities = softmax(x);
  return { outputs: outputs, probabilities: probabilities, predicted: argmax(probabilities) };
}

function argmax(values) {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

/** Decodes the exported weights and digits once. */
function prepare(data) {
  for (const layer of data.layers) {
    for (const p of Object.values(layer.params)) p.values = decodeF32(p.data);
  }
  for (const digit of data.digits) {
    digit.values = Float32Array.from(decodeBytes(digit.pixels), (b) => Math.fround(b / 255));
  }
  return data;
}

// ---- drawing -------------------------------------------------------------------------

/** Paints `values` (h x w, channel `ch` of `c`) into a canvas region, black = lowest. */
function paintMap(ctx, values, h, w, c, ch, x0, y0, scale) {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = ch; i < values.length; i += c) {
    lo = Math.min(lo, values[i]);
    hi = Math.max(hi, values[i]);
  }
  const range = hi > lo ? hi - lo : 1;
  const image = ctx.createImageData(w, h);
  for (let i = 0; i < h * w; i++) {
    const v = Math.round((255 * (values[i * c + ch] - lo)) / range);
    image.data.set([v, v, v, 255], 4 * i);
  }
  const tile = document.createElement("canvas");
  tile.width = w;
  tile.height = h;
  tile.getContext("2d").putImageData(image, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(tile, x0, y0, w * scale, h * scale);
}

/** A grid of every channel's map of an (h, w, c) activation. */
function mapGrid(values, shape) {
  const [h, w, c] = shape;
  const scale = Math.max(1, Math.floor(56 / h));
  const columns = Math.min(c, 16);
  const gap = 3;
  const canvas = document.createElement("canvas");
  canvas.width = columns * (w * scale + gap) - gap;
  canvas.height = Math.ceil(c / columns) * (h * scale + gap) - gap;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  for (let ch = 0; ch < c; ch++) {
    const col = ch % columns;
    const row = Math.floor(ch / columns);
    paintMap(ctx, values, h, w, c, ch, col * (w * scale + gap), row * (h * scale + gap), scale);
  }
  return canvas;
}

/** A strip of cells, one per unit of a dense activation. */
function unitStrip(values) {
  const many = values.length > 512;
  const cell = many ? 4 : 8;
  const columns = Math.min(values.length, many ? 128 : 64);
  const canvas = document.createElement("canvas");
  canvas.width = columns * cell;
  canvas.height = Math.ceil(values.length / columns) * cell;
  const ctx = canvas.getContext("2d");
  const hi = Math.max(...values.map(Math.abs), 1e-12);
  values.forEach(function (v, i) {
    const t = Math.round((255 * Math.abs(v)) / hi);
    ctx.fillStyle = v >= 0 ? `rgb(${255 - t},${255 - t},255)` : `rgb(255,${255 - t},${255 - t})`;
    ctx.fillRect((i % columns) * cell, Math.floor(i / columns) * cell, cell - 1, cell - 1);
  });
  return canvas;
}

function digitCanvas(values, scale) {
  const canvas = document.createElement("canvas");
  canvas.width = 28 * scale;
  canvas.height = 28 * scale;
  paintMap(canvas.getContext("2d"), values, 28, 28, 1, 0, 0, 0, scale);
  return canvas;
}

// ---- the page ------------------------------------------------------------------------

function element(tag, attributes, children) {
  const node = document.createElement(tag);
  Object.entries(attributes || {}).forEach(([k, v]) => node.setAttribute(k, v));
  (children || []).forEach((c) => node.append(c));
  return node;
}

/** Shows the network's answer for `pixels` (a Float32Array of 784 values in [0, 1]). */
function show(model, pixels, caption) {
  const result = forward(model, pixels);
  const layers = document.getElementById("layers");
  layers.replaceChildren();
  layers.append(
    element("section", { class: "layer" }, [
      element("h3", {}, ["input 28×28×1 — " + caption]),
      digitCanvas(pixels, 4),
    ])
  );
  for (const { layer, values } of result.outputs) {
    const shape = layer.output_shape;
    const picture = shape.length === 3 ? mapGrid(values, shape) : unitStrip(Array.from(values));
    layers.append(
      element("section", { class: "layer" }, [
        element("h3", {}, [`${layer.name} (${layer.kind}) ${shape.join("×")}`]),
        picture,
      ])
    );
  }
  const bars = document.getElementById("probabilities");
  bars.replaceChildren();
  result.probabilities.forEach(function (p, c) {
    const bar = element("span", { class: "bar" });
    bar.style.width = (100 * p).toFixed(1) + "%";
    bars.append(
      element("div", { class: c === result.predicted ? "row best" : "row" }, [
        element("span", { class: "label" }, [String(c)]),
        element("span", { class: "track" }, [bar]),
        element("span", { class: "value" }, [(100 * p).toFixed(2) + "%"]),
      ])
    );
  });
  const prediction = document.getElementById("prediction");
  prediction.dataset.class = String(result.predicted);
  prediction.textContent = `Predicted: ${result.predicted} (${(100 * result.probabilities[result.predicted]).toFixed(1)}%)`;
  return result;
}

function digitPicker(model) {
  const picker = document.getElementById("digits");
  model.digits.forEach(function (digit, i) {
    const button = element("button", {
      type: "button",
      "data-digit": String(i),
      title: `test digit #${digit.index}, label ${digit.label}, Petal predicts ${digit.predicted}`,
    }, [digitCanvas(digit.values, 1)]);
    button.addEventListener("click", function () {
      picker.querySelectorAll("button").forEach((b) => b.classList.remove("selected"));
      button.classList.add("selected");
      show(model, digit.values, `test digit #${digit.index} (label ${digit.label}; Petal predicts ${digit.predicted})`);
    });
    picker.append(button);
  });
}

/** Downsamples the drawing like MNIST: the ink's bounding box scaled into 20x20, then
 * placed in 28x28 so that its centre of mass is the centre. */
function drawingToDigit(pad) {
  const { width, height } = pad;
  const ink = pad.getContext("2d").getImageData(0, 0, width, height).data;
  let [x0, y0, x1, y1] = [width, height, -1, -1];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (ink[4 * (y * width + x)] > 0) {
        x0 = Math.min(x0, x); x1 = Math.max(x1, x);
        y0 = Math.min(y0, y); y1 = Math.max(y1, y);
      }
    }
  }
  if (x1 < 0) return null;
  const side = Math.max(x1 - x0 + 1, y1 - y0 + 1);
  const [bw, bh] = [x1 - x0 + 1, y1 - y0 + 1].map((s) => Math.max(1, Math.round((20 * s) / side)));
  const small = document.createElement("canvas");
  small.width = bw;
  small.height = bh;
  const sctx = small.getContext("2d");
  sctx.imageSmoothingQuality = "high";
  sctx.drawImage(pad, x0, y0, x1 - x0 + 1, y1 - y0 + 1, 0, 0, bw, bh);
  const box = sctx.getImageData(0, 0, bw, bh).data;
  let [mass, mx, my] = [0, 0, 0];
  for (let y = 0; y < bh; y++) {
    for (let x = 0; x < bw; x++) {
      const v = box[4 * (y * bw + x)] / 255;
      mass += v; mx += v * x; my += v * y;
    }
  }
  const dx = Math.round(14 - (mx / mass + 0.5));
  const dy = Math.round(14 - (my / mass + 0.5));
  const out = new Float32Array(28 * 28);
  for (let y = 0; y < bh; y++) {
    for (let x = 0; x < bw; x++) {
      const [tx, ty] = [x + dx, y + dy];
      if (tx >= 0 && tx < 28 && ty >= 0 && ty < 28) {
        out[ty * 28 + tx] = Math.fround(box[4 * (y * bw + x)] / 255);
      }
    }
  }
  return out;
}

function drawingPad(model) {
  const pad = document.getElementById("pad");
  const ctx = pad.getContext("2d");
  const clear = () => {
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, pad.width, pad.height);
  };
  clear();
  let drawing = false;
  const at = (e) => {
    const r = pad.getBoundingClientRect();
    return [((e.clientX - r.left) * pad.width) / r.width, ((e.clientY - r.top) * pad.height) / r.height];
  };
  pad.addEventListener("pointerdown", function (e) {
    drawing = true;
    if (e.isTrusted) pad.setPointerCapture(e.pointerId);
    ctx.beginPath();
    ctx.moveTo(...at(e));
  });
  pad.addEventListener("pointermove", function (e) {
    if (!drawing) return;
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = 22;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.lineTo(...at(e));
    ctx.stroke();
  });
  pad.addEventListener("pointerup", function () {
    drawing = false;
    const digit = drawingToDigit(pad);
    if (digit) show(model, digit, "your drawing");
  });
  document.getElementById("clear").addEventListener("click", clear);
}

/** Draws a stroke through `points` on the pad with pointer events, as a user would, and
 * returns the class the page then shows. */
function drawStroke(points) {
  const pad = document.getElementById("pad");
  const r = pad.getBoundingClientRect();
  const event = (type, [x, y]) =>
    pad.dispatchEvent(new PointerEvent(type, {
      pointerId: 1,
      clientX: r.left + (x * r.width) / pad.width,
      clientY: r.top + (y * r.height) / pad.height,
    }));
  document.getElementById("clear").click();
  event("pointerdown", points[0]);
  points.forEach((p) => event("pointermove", p));
  event("pointerup", points[points.length - 1]);
  return Number(document.getElementById("prediction").dataset.class);
}

/** `?selftest`: every embedded digit through this page's forward pass against Petal's
 * predictions (same class, probabilities within 1e-4), a stroke drawn on the pad, then
 * one digit selected through the picker and the class the page shows; the result goes
 * into the site check's report. */
function selfTest(model) {
  const tolerance = 1e-4;
  const mismatches = [];
  let maxDiff = 0;
  model.digits.forEach(function (digit, i) {
    const result = forward(model, digit.values);
    const diff = Math.max(...result.probabilities.map((p, c) => Math.abs(p - digit.probabilities[c])));
    maxDiff = Math.max(maxDiff, diff);
    if (result.predicted !== digit.predicted || !(diff <= tolerance)) {
      mismatches.push({ digit: i, petal: digit.predicted, page: result.predicted, diff: diff });
    }
  });
  // The drawing first, so that the digit picked afterwards is what the page shows.
  const drawn = drawStroke([[140, 50], [140, 230]]);
  const chosen = model.digits.length - 1;
  document.querySelector(`#digits button[data-digit="${chosen}"]`).click();
  const shown = Number(document.getElementById("prediction").dataset.class);
  const report = {
    digits: model.digits.length,
    drawing_prediction: drawn,
    mismatches: mismatches,
    max_probability_difference: maxDiff,
    selected_digit: chosen,
    petal_prediction: model.digits[chosen].predicted,
    shown_prediction: shown,
  };
  report.ok =
    mismatches.length === 0 && shown === report.petal_prediction && Number.isInteger(drawn);
  window.petalCheck.extra.selftest = report;
}

function main() {
  const data = window.PETAL_EXPLAINER;
  if (!data) {
    document.getElementById("missing").hidden = false;
    document.getElementById("explainer").hidden = true;
    if (window.petalCheck) window.petalCheck.extra.selftest = { ok: false, reason: "model.js is missing" };
    return;
  }
  const model = prepare(data);
  document.getElementById("model-file").textContent = data.model_file;
  digitPicker(model);
  drawingPad(model);
  if (new URLSearchParams(location.search).has("selftest")) {
    selfTest(model);
  } else {
    document.querySelector("#digits button").click();
  }
}

window.addEventListener("load", main);
