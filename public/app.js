// ConvLens gallery — plain browser JavaScript, no framework and no build step.
//
// The page asks the server for everything it shows (see /openapi.yaml):
//   GET  /api/model        the header, the layer table, the selects and the filter cards
//   POST /api/predict      the predictions of the chosen image
//   POST /heatmap          the class heatmap overlay (PNG, details in X-* headers)
//   POST /activations      the activation grid of one layer (PNG)
//   GET  /filters/{layer}  a filter grid: the PNG if cached, else 202 and a job to follow
//   GET  /jobs/{id}/events the job's progress (Server-Sent Events; /jobs/{id} is the fallback)
'use strict';

// Filters per gallery card and columns of its grid: the server's gallery settings
// (GET /api/model → filter_defaults.gallery_count / gallery_cols), so cards share the
// grids its pre-rendering and `convlens gallery` put in the cache.
function galleryCount() { return (state.model && state.model.filter_defaults.gallery_count) || 16; }
function galleryCols() { return (state.model && state.model.filter_defaults.gallery_cols) || 8; }
// Filter jobs this page keeps in flight. The server runs one job at a time; asking for
// more only fills its queue with cards the user may have scrolled past, and every job
// holds an event-stream connection (browsers allow six per host).
const MAX_ACTIVE_FILTER_JOBS = 2;
// How long to wait after the last move of the opacity slider before asking again.
const ALPHA_DEBOUNCE_MS = 300;
// Polling interval when the event stream is unavailable.
const POLL_INTERVAL_MS = 1500;
const WAITING_TEXT = `Waiting for the cards above (this page computes ${MAX_ACTIVE_FILTER_JOBS} grids at a time)…`;

const state = {
  model: null,
  image: null,          // { blob, name } of the chosen image
  heatmapClass: null,   // class index to explain; null = the top prediction
  filterCards: [],      // { layer, el, visible, active, retryTimer }
  activeFilterJobs: 0,
  submittingFilterJob: false,  // a /filters request is on its way; its answer is not in yet
  filterMethod: 'auto',        // auto (the server picks book or lucid per layer; pre-rendered), book (§5.4) or lucid
};

// ---------------------------------------------------------------------------
// Small DOM helpers

const $ = (selector, root = document) => root.querySelector(selector);

/** Creates an element with attributes/properties and children. */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key in node && typeof value !== 'string') node[key] = value;
    else node.setAttribute(key, value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function setText(selector, text) {
  $(selector).textContent = text;
}

function formatInteger(n) {
  return n.toLocaleString('en-US');
}

function formatShape(shape) {
  return shape.join('×');
}

function formatPercent(p) {
  return `${(p * 100).toFixed(p >= 0.995 || p < 0.001 ? 2 : 1)}%`;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------
// HTTP: every error the server sends is JSON {error, detail}; keep both, so the
// page can show the detail (it says what went wrong and what is allowed).

class ApiError extends Error {
  constructor(status, code, detail, retryAfter = null) {
    super(detail || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

async function errorFromResponse(response) {
  const retryAfter = Number(response.headers.get('Retry-After')) || null;
  try {
    const body = await response.json();
    return new ApiError(response.status, body.error, body.detail, retryAfter);
  } catch {
    return new ApiError(response.status, `http_${response.status}`,
      `the server answered ${response.status} ${response.statusText}`, retryAfter);
  }
}

/** fetch() that turns network failures and non-2xx answers into ApiError. */
async function request(url, options = {}) {
  let response;
  try {
    response = await fetch(url, options);
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, 'network', `cannot reach the server (${err.message})`);
  }
  if (!response.ok) throw await errorFromResponse(response);
  return response;
}

/** POSTs the chosen image to an API path with query parameters. */
function postImage(path, params, signal) {
  const query = new URLSearchParams(params).toString();
  const blob = state.image.blob;
  // PNG and JPEG go as what they are; anything else as octet-stream, so the server
  // looks at the bytes and says precisely what is wrong (instead of rejecting the type).
  const type = ['image/png', 'image/jpeg'].includes(blob.type) ? blob.type : 'application/octet-stream';
  return request(`${path}?${query}`, {
    method: 'POST',
    body: blob,
    headers: { 'Content-Type': type },
    signal,
  });
}

function describeError(err) {
  if (err instanceof ApiError) {
    return err.code && err.status ? `${err.message} (${err.status} ${err.code})` : err.message;
  }
  return String(err.message || err);
}

const isAbort = (err) => err && err.name === 'AbortError';

/**
 * Keeps one request per panel: starting a new one aborts the previous, so a slow
 * old answer never overwrites a newer one.
 */
function latestOnly() {
  let controller = null;
  return () => {
    if (controller) controller.abort();
    controller = new AbortController();
    return controller.signal;
  };
}

// ---------------------------------------------------------------------------
// Panel state: errors, busy spinners, images from blobs

function showError(id, err) {
  const node = $(`#${id}`);
  node.textContent = typeof err === 'string' ? err : describeError(err);
  node.hidden = false;
}

function clearError(id) {
  const node = $(`#${id}`);
  node.textContent = '';
  node.hidden = true;
}

const busyTimers = new Map();

/**
 * Marks a panel busy and counts the seconds in its heading: some methods (Score-CAM,
 * SmoothGrad) take minutes on a slow server, and a silent spinner looks hung.
 */
function setBusy(panelId, busy) {
  const panel = $(`#${panelId}`);
  panel.dataset.busy = String(busy);
  clearInterval(busyTimers.get(panelId));
  const note = panel.querySelector('.busy-note');
  if (!note) return;
  note.textContent = busy ? 'computing…' : '';
  if (!busy) return;
  const started = performance.now();
  busyTimers.set(panelId, setInterval(() => {
    note.textContent = `computing… ${Math.round((performance.now() - started) / 1000)} s`;
  }, 1000));
}

/**
 * Shows a PNG blob in an <img>. data-loaded turns "true" only once the browser has
 * decoded it (tests and styles rely on that). The previous object URL is released.
 */
function showBlobImage(img, blob) {
  return new Promise((resolve, reject) => {
    const url = URL.createObjectURL(blob);
    img.dataset.loaded = 'false';
    img.onload = () => {
      img.dataset.loaded = 'true';
      resolve(url);
    };
    img.onerror = () => reject(new Error('the browser could not decode the picture the server sent'));
    if (img.dataset.objectUrl) URL.revokeObjectURL(img.dataset.objectUrl);
    img.dataset.objectUrl = url;
    img.src = url;
    img.hidden = false;
  });
}

// ---------------------------------------------------------------------------
// Start: the model description drives the rest of the page

async function boot() {
  bindImageInputs();
  try {
    const response = await request('/api/model');
    state.model = await response.json();
  } catch (err) {
    setText('#model-name', 'unavailable');
    showError('model-error', `Could not load the model description: ${describeError(err)}`);
    return;
  }
  renderHeader(state.model);
  renderLayerTable(state.model);
  fillControls(state.model);
  renderFilterCards(state.model);
  document.dispatchEvent(new Event('convlens:model'));  // unit.js: the unit page and the cards' links
}

function renderHeader(model) {
  const { height, width, channels } = model.input;
  // A nested model's row sums its own layers' parameters, which have rows too.
  const parameters = model.layers.reduce((sum, l) => sum + (l.nested_model ? 0 : l.parameters || 0), 0);
  const rows = [
    ['Model', model.name],
    ['Input', `${width}×${height}×${channels}`],
    ['Classes', formatInteger(model.classes)],
    ['Layers', `${model.layers.length} · ${formatInteger(parameters)} parameters`],
  ];
  const summary = $('#model-summary');
  summary.replaceChildren(...rows.map(([term, value]) => el('div', {}, el('dt', {}, term), el('dd', {}, value))));
  summary.querySelector('dd').id = 'model-name';
  document.title = `ConvLens — ${model.name}`;
}

function renderLayerTable(model) {
  const convolutions = model.layers.filter((l) => l.convolution).length;
  setText('#layers-summary',
    `${model.layers.length} layers, ${convolutions} of them convolutions (their names link to their filters). ` +
    `Input: ${model.input.width}×${model.input.height}, resized with ${model.input.resize}, ` +
    `preprocessing ${model.input.preprocessing}.`);
  const rows = model.layers.map((layer, index) => {
    const name = layer.convolution
      ? el('a', { href: `#filters-${layer.name}`, title: 'Show its filters' }, layer.name)
      : layer.name;
    // Layers inside a nested model are indented under it; their path shows on hover.
    const depth = layer.depth || 0;
    return el('tr', { dataset: { layer: layer.name, convolution: String(layer.convolution) } },
      el('td', { class: 'num' }, String(index)),
      el('td', { class: 'name', style: depth ? `padding-left: ${0.5 + 1.25 * depth}em` : '', title: layer.path || layer.name }, name),
      el('td', {}, layer.class_name),
      el('td', {}, formatShape(layer.output_shape)),
      el('td', { class: 'num' }, layer.parameters ? formatInteger(layer.parameters) : '—'),
      el('td', { class: 'num' }, layer.filters ? String(layer.filters) : ''));
  });
  $('#layer-list tbody').replaceChildren(...rows);
}

/** Layers whose output the activation and heatmap routes accept (a spatial feature map). */
function spatialLayers(model) {
  return model.layers.filter((l) => l.spatial && l.filters);
}

function fillSelect(select, values, selected, labelOf = (v) => v) {
  select.replaceChildren(...values.map((v) => el('option', { value: v }, labelOf(v))));
  if (selected !== undefined && values.includes(selected)) select.value = selected;
}

/** A select of layers grouped by block (stem, block1a, …, top), which keeps 140 entries findable. */
function fillLayerSelect(select, layers, selected) {
  const groups = new Map();
  for (const layer of layers) {
    const group = layer.name.split('_')[0];
    if (!groups.has(group)) groups.set(group, el('optgroup', { label: group }));
    groups.get(group).append(el('option', { value: layer.name },
      `${layer.name} (${formatShape(layer.output_shape)})`));
  }
  select.replaceChildren(...groups.values());
  if (selected) select.value = selected;
}

function fillControls(model) {
  // Switching the filter method redraws the cards; jobs already running finish on the
  // server and stay cached, so switching back shows them at once.
  $('#filter-method').addEventListener('change', (event) => {
    state.filterMethod = event.target.value;
    renderFilterCards(model);
  });

  fillSelect($('#cam-method'), model.cam_methods, 'gradcam');
  fillSelect($('#cam-colormap'), model.colormaps, 'jet');
  fillSelect($('#activation-colormap'), model.colormaps, 'viridis');

  const spatial = spatialLayers(model);
  fillLayerSelect($('#cam-layer'), spatial, model.default_heatmap_layer);
  const firstConv = model.layers.find((l) => l.convolution);
  fillLayerSelect($('#activation-layer'), spatial, firstConv ? firstConv.name : undefined);

  // Method, layer, colormap and smoothing re-request at once; the slider waits until it rests.
  for (const id of ['#cam-method', '#cam-layer', '#cam-colormap', '#cam-eigen-smooth', '#cam-aug-smooth']) {
    $(id).addEventListener('change', () => loadHeatmap());
  }
  let alphaTimer = null;
  $('#cam-alpha').addEventListener('input', () => {
    setText('#cam-alpha-value', Number($('#cam-alpha').value).toFixed(2));
    clearTimeout(alphaTimer);
    alphaTimer = setTimeout(() => loadHeatmap(), ALPHA_DEBOUNCE_MS);
  });
  for (const id of ['#activation-layer', '#activation-colormap']) {
    $(id).addEventListener('change', () => loadActivations());
  }
}

// ---------------------------------------------------------------------------
// Choosing an image: samples, drag and drop, file picker

function bindImageInputs() {
  for (const button of document.querySelectorAll('[data-sample]')) {
    button.addEventListener('click', () => chooseSample(button));
  }
  $('#file-input').addEventListener('change', (event) => {
    const file = event.target.files[0];
    if (file) chooseImage(file, file.name);
    event.target.value = ''; // choosing the same file again should still fire change
  });

  const zone = $('#image-panel');
  // dragover must be cancelled, or the browser opens the dropped file itself.
  zone.addEventListener('dragover', (event) => {
    event.preventDefault();
    zone.classList.add('dragging');
  });
  zone.addEventListener('dragleave', (event) => {
    if (!zone.contains(event.relatedTarget)) zone.classList.remove('dragging');
  });
  zone.addEventListener('drop', (event) => {
    event.preventDefault();
    zone.classList.remove('dragging');
    const file = event.dataTransfer.files[0];
    if (file) chooseImage(file, file.name);
    else showError('image-error', 'Drop an image file (PNG or JPEG).');
  });
}

async function chooseSample(button) {
  const name = button.dataset.sample;
  clearError('image-error');
  try {
    const response = await request(`/samples/${encodeURIComponent(name)}`);
    await chooseImage(await response.blob(), name);
    for (const b of document.querySelectorAll('[data-sample]')) b.setAttribute('aria-pressed', String(b === button));
  } catch (err) {
    showError('image-error', `Could not load the sample ${name}: ${describeError(err)}`);
  }
}

async function chooseImage(blob, name) {
  clearError('image-error');
  for (const b of document.querySelectorAll('[data-sample]')) b.setAttribute('aria-pressed', 'false');
  state.image = { blob, name };
  state.heatmapClass = null;
  clearResults();
  await showChosenImage(blob, name);
  analyseImage();
  document.dispatchEvent(new Event('convlens:image'));  // unit.js: the unit's activation
}

/** Results of the previous image must not stay next to a new one (or next to its error). */
function clearResults() {
  $('#predictions').replaceChildren();
  $('#segmentation').hidden = true;
  for (const [imgId, emptyId, infoId] of [['heatmap-img', 'heatmap-empty', 'heatmap-info'],
    ['activations-img', 'activations-empty', 'activations-info']]) {
    const img = $(`#${imgId}`);
    img.hidden = true;
    img.dataset.loaded = 'false';
    setText(`#${infoId}`, '');
    $(`#${emptyId}`).hidden = true;
  }
  $('#predictions-empty').hidden = true;
  if (typeof clearComparison === 'function') clearComparison();  // compare.js
}

/**
 * Errors about the upload itself (not a PNG/JPEG, corrupt, too large) come back from
 * all three requests; say it once, beside the image, instead of in every panel.
 */
const IMAGE_ERROR_CODES = new Set(['unsupported_media_type', 'unsupported_image', 'corrupt_image',
  'image_too_large', 'body_too_large']);

function showPanelError(panelErrorId, err) {
  if (err instanceof ApiError && IMAGE_ERROR_CODES.has(err.code)) {
    showError('image-error', `The server cannot use this image: ${describeError(err)}`);
    const placeholder = $(`#${panelErrorId.replace('-error', '-empty')}`);
    placeholder.textContent = 'No result: see the message under the image.';
    placeholder.hidden = false;
  } else {
    showError(panelErrorId, err);
  }
}

async function showChosenImage(blob, name) {
  const img = $('#chosen-img');
  $('#drop-zone').dataset.hasImage = 'true';
  try {
    await showBlobImage(img, blob);
    const size = `${img.naturalWidth}×${img.naturalHeight}`;
    const input = state.model ? ` — the model sees it at ${state.model.input.width}×${state.model.input.height}` : '';
    setText('#chosen-caption', `${name}, ${size}${input}`);
  } catch {
    // The browser cannot show it (e.g. a format it does not know); the server may still decode it.
    img.hidden = true;
    setText('#chosen-caption', `${name} (no preview)`);
  }
}

/** Everything that depends on the image: three independent requests. */
function analyseImage() {
  if (!state.image || !state.model) return;
  loadPredictions();
  loadHeatmap();
  loadActivations();
}

// ---------------------------------------------------------------------------
// Predictions

const nextPredictionSignal = latestOnly();

async function loadPredictions() {
  const signal = nextPredictionSignal();
  clearError('predictions-error');
  setBusy('predictions-panel', true);
  try {
    const response = await postImage('/api/predict', { top: 5 }, signal);
    renderPredictions(await response.json());
  } catch (err) {
    if (isAbort(err)) return;
    $('#predictions').replaceChildren();
    showPanelError('predictions-error', err);
  } finally {
    if (!signal.aborted) setBusy('predictions-panel', false);
  }
}

/**
 * A classifier's answer is its top 5; a segmentation's (a per-pixel output) is its mask:
 * drawn over the image, and its classes listed by the share of the cells they own, the
 * first being the class a heatmap explains by default.
 */
function renderPredictions(doc) {
  $('#predictions-empty').hidden = true;
  const mask = doc.segmentation;
  const top = mask ? segmentationClasses(doc, mask) : doc.top;
  setText('#predictions-hint', mask
    ? 'The predicted mask: each cell coloured by its class. Click a class to see what the model reads to find it.'
    : 'Top 5 classes. Click one to see which parts of the image point to it.');
  renderMask(mask);
  const items = top.map((p, rank) => {
    const label = p.label || `class ${p.class}`;
    const swatch = mask ? el('span', { class: 'swatch', style: `background: ${maskColour(p.class)}`, 'aria-hidden': 'true' }) : '';
    const button = el('button', { type: 'button', title: `Heatmap for “${label}”`, 'aria-pressed': 'false' },
      el('span', { class: 'label' }, swatch, label),
      el('span', { class: 'bar', 'aria-hidden': 'true' }, el('span', { style: `width: ${(p.score * 100).toFixed(1)}%` })),
      el('span', { class: 'score' }, formatPercent(p.score)));
    button.addEventListener('click', () => explainClass(rank === 0 ? null : p.class));
    return el('li', { dataset: { class: String(p.class), label, score: String(p.score) } }, button);
  });
  $('#predictions').replaceChildren(...items);
  markExplainedClass();
}

/** A segmentation's classes that own cells, by share of the cells, labelled where the answer labels them. */
function segmentationClasses(doc, mask) {
  const labels = new Map(doc.top.map((p) => [p.class, p.label]));
  const total = mask.argmax.length;
  return mask.cells
    .map((cells, c) => ({ class: c, label: labels.get(c) || null, score: cells / total }))
    .filter((p) => p.score > 0)
    .sort((a, b) => b.score - a.score);
}

/** Distinct colours for up to ten classes, then a hue walk. */
const MASK_COLOURS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
function maskColour(c) {
  return c < MASK_COLOURS.length ? MASK_COLOURS[c] : `hsl(${(c * 137.5) % 360} 70% 50%)`;
}

/** The mask over the chosen image, half opaque, each cell a block of its class's colour. */
function renderMask(mask) {
  const figure = $('#segmentation');
  figure.hidden = !mask;
  if (!mask) return;
  const image = $('#chosen-img');
  const canvas = $('#segmentation-canvas');
  const width = Math.min(320, image.naturalWidth || 320);
  const height = Math.round(width * ((image.naturalHeight || mask.height) / (image.naturalWidth || mask.width)));
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext('2d');
  if (image.naturalWidth) context.drawImage(image, 0, 0, width, height);
  const cells = document.createElement('canvas');
  cells.width = mask.width;
  cells.height = mask.height;
  const cellContext = cells.getContext('2d');
  mask.argmax.forEach((c, i) => {
    cellContext.fillStyle = maskColour(c);
    cellContext.fillRect(i % mask.width, Math.floor(i / mask.width), 1, 1);
  });
  context.globalAlpha = 0.5;
  context.imageSmoothingEnabled = false;
  context.drawImage(cells, 0, 0, width, height);
  context.globalAlpha = 1;
  setText('#segmentation-caption', `${mask.width}×${mask.height} cells, ${mask.cells.filter((n) => n > 0).length} classes present`);
  canvas.dataset.cells = String(mask.argmax.length);
}

function explainClass(classIndex) {
  state.heatmapClass = classIndex;
  markExplainedClass();
  loadHeatmap();
}

function markExplainedClass() {
  const items = [...document.querySelectorAll('#predictions li')];
  items.forEach((li, rank) => {
    const chosen = state.heatmapClass === null ? rank === 0 : Number(li.dataset.class) === state.heatmapClass;
    li.querySelector('button').setAttribute('aria-pressed', String(chosen));
  });
}

// ---------------------------------------------------------------------------
// Heatmap

const nextHeatmapSignal = latestOnly();

function heatmapParams() {
  const params = {
    method: $('#cam-method').value,
    alpha: $('#cam-alpha').value,
    colormap: $('#cam-colormap').value,
    layer: $('#cam-layer').value,
  };
  if (state.heatmapClass !== null) params.class = String(state.heatmapClass);
  // Only when set: the server ignores them for pixel attributions anyway.
  if ($('#cam-eigen-smooth').checked) params.eigen_smooth = 'true';
  if ($('#cam-aug-smooth').checked) params.aug_smooth = 'true';
  return params;
}

async function loadHeatmap() {
  if (!state.image || !state.model) return;
  const signal = nextHeatmapSignal();
  const img = $('#heatmap-img');
  img.dataset.loaded = 'false';
  clearError('heatmap-error');
  setBusy('heatmap-panel', true);
  try {
    const response = await postImage('/heatmap', heatmapParams(), signal);
    const blob = await response.blob();
    if (signal.aborted) return;
    setText('#heatmap-info', describeHeatmap(response.headers));
    await showBlobImage(img, blob);
    $('#heatmap-empty').hidden = true;
  } catch (err) {
    if (isAbort(err)) return;
    showPanelError('heatmap-error', err);
  } finally {
    if (!signal.aborted) setBusy('heatmap-panel', false);
  }
}

/** One line from the X-* headers: which class, how likely, which layer and method. */
function describeHeatmap(headers) {
  const label = headers.get('X-Label') || `class ${headers.get('X-Class')}`;
  const probability = headers.get('X-Probability');
  const layer = headers.get('X-Layer');
  const cells = headers.get('X-Target-Cells');  // a segmentation: the cells its score sums over
  const parts = [`Explaining “${label}” (class ${headers.get('X-Class')}`
    + (probability ? `, ${formatPercent(Number(probability))}` : '') + (cells ? `, over ${cells} cells)` : ')')];
  parts.push(`method ${headers.get('X-Method')}`);
  parts.push(layer === 'input' ? 'computed on the input pixels' : `layer ${layer}`);
  return parts.join(' · ');
}

// ---------------------------------------------------------------------------
// Activations

const nextActivationSignal = latestOnly();

/**
 * Columns that make the grid about twice as wide as tall, whatever the channel count;
 * a divisor of the count when one is close, so the last row is full.
 */
function activationColumns(layerName) {
  const layer = state.model.layers.find((l) => l.name === layerName);
  const channels = layer && layer.filters ? layer.filters : 16;
  const ideal = Math.sqrt(channels * 2);
  let best = null;
  for (let cols = Math.max(1, Math.floor(ideal * 0.75)); cols <= Math.ceil(ideal * 1.3); cols += 1) {
    const divides = channels % cols === 0;
    if (divides && (best === null || Math.abs(cols - ideal) < Math.abs(best - ideal))) best = cols;
  }
  return Math.max(1, Math.min(channels, 256, best ?? Math.ceil(ideal)));
}

/** "stem_conv: 112×112 × 32 channels". X-Shape may carry a leading batch size of 1. */
function describeActivations(headers, layer) {
  const dims = (headers.get('X-Shape') || '').split('x').map(Number).filter((n) => n > 0);
  const name = headers.get('X-Layer') || layer;
  if (dims.length < 3) return name;
  const [height, width, channels] = dims.slice(-3);
  return `${name}: ${channels} channels of ${height}×${width}, one tile each`;
}

async function loadActivations() {
  if (!state.image || !state.model) return;
  const signal = nextActivationSignal();
  const layer = $('#activation-layer').value;
  const img = $('#activations-img');
  img.dataset.loaded = 'false';
  clearError('activations-error');
  setBusy('activations-panel', true);
  try {
    const params = { layer, cols: activationColumns(layer), colormap: $('#activation-colormap').value };
    const response = await postImage('/activations', params, signal);
    const blob = await response.blob();
    if (signal.aborted) return;
    setText('#activations-info', describeActivations(response.headers, layer));
    const url = await showBlobImage(img, blob);
    // Deep layers give small grids (1280 tiles of 7×7): enlarge them with crisp pixels.
    img.classList.toggle('enlarged', img.naturalWidth < img.closest('.picture').clientWidth);
    $('#activations-link').href = url;
    $('#activations-empty').hidden = true;
  } catch (err) {
    if (isAbort(err)) return;
    showPanelError('activations-error', err);
  } finally {
    if (!signal.aborted) setBusy('activations-panel', false);
  }
}

// ---------------------------------------------------------------------------
// Filter cards: one per convolution layer, loaded when scrolled into view

function renderFilterCards(model) {
  const layers = model.layers.filter((l) => l.convolution);
  if (!state.filtersIntro) state.filtersIntro = $('#filters-intro').textContent.trim();
  const defaults = model.filter_defaults || {};
  const steps = { lucid: defaults.steps_lucid, book: defaults.steps_book }[state.filterMethod];
  setText('#filters-intro', `${state.filtersIntro} Each card shows the first ` +
    `${galleryCount()} filters of its layer${steps ? ` after ${steps} ${state.filterMethod} steps` : ' (auto: the book\'s method in the first layers, lucid deeper; the card says which)'}.`);
  if (state.filterObserver) state.filterObserver.disconnect();
  // Cards of the previous method stop following their jobs (which finish on the
  // server and stay cached) so they hold no connection or job slot.
  for (const old of state.filterCards) retireFilterCard(old);
  const observer = new IntersectionObserver(onCardsIntersect, { rootMargin: '100px 0px' });
  state.filterObserver = observer;
  state.filterCards = layers.map((layer) => {
    const card = { layer, el: buildFilterCard(layer), visible: false, active: false, retryTimer: null };
    card.el.card = card;
    observer.observe(card.el);
    return card;
  });
  $('#filter-cards').replaceChildren(...state.filterCards.map((c) => c.el));
}

function buildFilterCard(layer) {
  const count = Math.min(galleryCount(), layer.filters || galleryCount());
  const retry = el('button', { type: 'button', class: 'retry', hidden: true }, 'Try again');
  const node = el('article', { class: 'filter-card', id: `filters-${layer.name}`, dataset: { layer: layer.name, state: 'idle' } },
    el('header', {},
      el('h3', {}, layer.name),
      el('span', { class: 'meta' }, `${layer.class_name} · ${layer.filters} filters · showing ${count}` +
        (layer.activated_output && layer.activated_output !== layer.name ? ` · seen at ${layer.activated_output}` : ''))),
    el('div', { class: 'grid-area' },
      el('div', { class: 'progress', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100' },
        el('div', { class: 'bar' })),
      el('p', { class: 'status' }, 'Scroll here to compute.')),
    el('p', { class: 'error', role: 'alert', hidden: true }),
    retry);
  retry.addEventListener('click', () => {
    const card = node.card;
    setCardState(card, 'waiting', WAITING_TEXT);
    scheduleFilterJobs();
  });
  return node;
}

function onCardsIntersect(entries) {
  for (const entry of entries) {
    const card = entry.target.card;
    card.visible = entry.isIntersecting;
    if (card.visible && card.el.dataset.state === 'idle') setCardState(card, 'waiting', WAITING_TEXT);
  }
  scheduleFilterJobs();
}

/**
 * Starts filter jobs for waiting cards, visible ones only and in page order, while
 * fewer than MAX_ACTIVE_FILTER_JOBS run. A card scrolled past before its turn keeps
 * waiting and starts when it comes back into view.
 */
function scheduleFilterJobs() {
  // One submission at a time: two fetches sent together may reach the server in
  // either order, and the server runs jobs first come, first served.
  if (state.submittingFilterJob) return;
  for (const card of state.filterCards) {
    if (state.activeFilterJobs >= MAX_ACTIVE_FILTER_JOBS) return;
    if (card.visible && !card.active && card.el.dataset.state === 'waiting' && !card.retryTimer) {
      loadFilterCard(card);
      return; // the next one goes out once the server has answered this one
    }
  }
}

// A convolution's filters are drawn at its output after its own BatchNorm/activation
// (activated_output): the raw output of a linear convolution is maximised by flat colour.
function filterGridUrl(layer) {
  const count = Math.min(galleryCount(), layer.filters || galleryCount());
  const target = layer.activated_output || layer.name;
  return `/filters/${encodeURIComponent(target)}?count=${count}&cols=${galleryCols()}&method=${state.filterMethod}`;
}

/** wait=0: the server answers at once (PNG or 202), never holding the connection. */
function withoutWaiting(url) {
  const u = new URL(url, location.href);
  u.searchParams.set('wait', '0');
  return u.pathname + u.search;
}

function retireFilterCard(card) {
  card.retired = true;
  if (card.retryTimer) clearTimeout(card.retryTimer);
  if (card.stopFollowing) card.stopFollowing();
}

async function loadFilterCard(card) {
  card.active = true;
  state.activeFilterJobs += 1;
  const started = performance.now();
  setCardState(card, 'queued', 'Asking the server…');
  try {
    const { blob, url, method } = await fetchFilterGrid(card, filterGridUrl(card.layer));
    if (method) card.el.dataset.method = method; // what auto resolved to (X-Method)
    await showFilterGrid(card, blob, url, (performance.now() - started) / 1000);
  } catch (err) {
    if (!card.retired) failFilterCard(card, err);
  } finally {
    card.active = false;
    state.activeFilterJobs -= 1;
    scheduleFilterJobs();
  }
}

/**
 * Gets the grid PNG: at once when cached, else follows the job the server started
 * and then fetches its result URL (which a second job may replace, if the cache
 * dropped the picture in between — hence the loop).
 */
async function fetchFilterGrid(card, url) {
  for (let attempt = 0; attempt < 3; attempt += 1) {
    const response = await submitFilterRequest(url);
    if (response.status === 200) return { blob: await response.blob(), url, method: response.headers.get('X-Method') };
    const job = await response.json();     // 202: {id, state, step, steps, result, ...}
    const final = await followJob(card, job);
    if (final.state === 'failed') throw new ApiError(null, 'job_failed', final.error || 'the job failed on the server');
    if (final.state === 'cancelled') throw new ApiError(null, 'job_cancelled', final.error || 'the job was cancelled on the server');
    url = final.result;
  }
  throw new ApiError(null, 'no_result', 'the server kept restarting this job; try again');
}

/** GET of a grid URL; lets the scheduler send the next card's request once this one is answered. */
async function submitFilterRequest(url) {
  state.submittingFilterJob = true;
  try {
    return await request(withoutWaiting(url));
  } finally {
    state.submittingFilterJob = false;
    // Deferred: the caller records this card's state first.
    setTimeout(scheduleFilterJobs, 0);
  }
}

/** Resolves with the job's final status, showing progress on the way. */
function followJob(card, job) {
  updateCardProgress(card, job);
  if (isFinished(job.state)) return Promise.resolve(job);
  if (!('EventSource' in window)) return pollJob(card, job.id);
  return new Promise((resolve, reject) => {
    const source = new EventSource(`/jobs/${encodeURIComponent(job.id)}/events`);
    card.el.dataset.transport = 'sse';
    let settled = false;
    const finish = (event) => {
      settled = true;
      source.close(); // or EventSource would reconnect when the server ends the stream
      resolve(JSON.parse(event.data));
    };
    card.stopFollowing = () => {
      if (settled) return;
      settled = true;
      source.close();
      reject(new ApiError(null, 'retired', 'no longer shown'));
    };
    source.addEventListener('progress', (event) => updateCardProgress(card, JSON.parse(event.data)));
    for (const name of ['done', 'failed', 'cancelled']) source.addEventListener(name, finish);
    source.onerror = () => {
      if (settled) return;
      settled = true;
      source.close();
      // The stream broke (proxy, server restart, …): the job may still be running.
      card.el.dataset.transport = 'poll';
      pollJob(card, job.id).then(resolve, reject);
    };
  });
}

async function pollJob(card, id) {
  for (;;) {
    await sleep(POLL_INTERVAL_MS);
    if (card.retired) throw new ApiError(null, 'retired', 'no longer shown');
    const status = await (await request(`/jobs/${encodeURIComponent(id)}`)).json();
    updateCardProgress(card, status);
    if (isFinished(status.state)) return status;
  }
}

function isFinished(jobState) {
  return jobState === 'done' || jobState === 'failed' || jobState === 'cancelled';
}

function updateCardProgress(card, job) {
  if (job.state === 'queued') {
    const ahead = job.queue_position;
    setCardState(card, 'queued', ahead ? `Queued on the server, ${ahead} job${ahead === 1 ? '' : 's'} ahead` : 'Queued on the server, next in line');
  } else if (job.state === 'running') {
    // Before its first step a job reports steps = 0: show the moving stripe, not an empty bar.
    const fraction = job.steps ? job.step / job.steps : null;
    const loss = typeof job.loss === 'number' ? ` · mean activation ${job.loss.toFixed(3)}` : '';
    setCardState(card, 'running', job.steps ? `Step ${job.step} of ${job.steps}${loss}` : 'Starting…', fraction);
  }
  // Final states are shown by the caller, once the picture is there (or the error).
}

async function showFilterGrid(card, blob, url, seconds) {
  const img = el('img', { alt: `Filters 0–${galleryCount() - 1} of ${card.layer.name}`, class: 'filter-grid', dataset: { loaded: 'false' } });
  const link = el('a', { href: url, target: '_blank', rel: 'noopener', title: 'Open the grid at full size' }, img);
  await showBlobImage(img, blob);
  card.el.querySelector('.grid-area').replaceChildren(link);
  const method = card.el.dataset.method ? `${card.el.dataset.method}, ` : '';
  setCardState(card, 'done', `${method}${seconds < 1 ? 'from the cache' : `computed in ${seconds.toFixed(0)} s`}`);
  const status = el('p', { class: 'status done' }, card.el.dataset.statusText);
  card.el.querySelector('.grid-area').after(status);
}

function failFilterCard(card, err) {
  // A full queue is temporary: wait as the server says, then try again by itself.
  if (err instanceof ApiError && err.status === 429) {
    const seconds = err.retryAfter || 5;
    setCardState(card, 'waiting', `The server is busy; trying again in ${seconds} s`);
    card.retryTimer = setTimeout(() => {
      card.retryTimer = null;
      scheduleFilterJobs();
    }, seconds * 1000);
    return;
  }
  setCardState(card, 'failed', 'Failed');
  const error = card.el.querySelector('.error');
  error.textContent = describeError(err);
  error.hidden = false;
  card.el.querySelector('.retry').hidden = false;
}

/** data-state drives the styles (and tests); fraction fills the bar when known. */
function setCardState(card, cardState, text, fraction = null) {
  const node = card.el;
  node.dataset.state = cardState;
  node.dataset.statusText = text;
  if (cardState !== 'failed') {
    node.querySelector('.error').hidden = true;
    node.querySelector('.retry').hidden = true;
  }
  const status = node.querySelector('.grid-area .status');
  if (status) status.textContent = text;
  const progress = node.querySelector('.progress');
  if (progress) {
    const percent = fraction === null ? null : Math.round(fraction * 100);
    progress.dataset.indeterminate = String(percent === null);
    progress.querySelector('.bar').style.width = percent === null ? '' : `${percent}%`;
    if (percent === null) progress.removeAttribute('aria-valuenow');
    else progress.setAttribute('aria-valuenow', String(percent));
  }
}

document.addEventListener('DOMContentLoaded', boot);
