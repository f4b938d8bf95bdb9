// ConvLens unit page — one filter of one layer, as OpenAI Microscope shows a unit:
//   /#/filters/{layer}/{index}            bookmarkable; a reload lands on it
//   /#/filters/{layer}/{index}?steps=64   lucid steps for the lucid pictures (default: the server's)
// It shows, from the server (see /openapi.yaml):
//   GET  /filters/{layer}/{index}?method=book|lucid        the filter's visualisation, both methods
//   GET  /filters/{layer}/{index}?method=lucid&objective=neuron   the unit at the centre only
//   GET  /filters/{layer}/{index}/examples (PNG and JSON)   the dataset images that excite it most
//   POST /activations?layer=…&channel=…                     its activation on the chosen image
//   GET  /filters/{output layer}/{class}?method=lucid       a class visualisation (the class logit)
// Uses app.js's globals (state, request, postImage, el, $, describeError, showBlobImage,
// withoutWaiting, sleep); app.js announces a loaded model and a chosen image with the
// events convlens:model and convlens:image.
'use strict';

const unitPage = {
  route: null,          // { layer, index, steps } of the page shown, or null
  generation: 0,        // bumped on every route change: late answers of an old page are dropped
};

/** The unit route of a location hash, or null. */
function parseUnitHash(hash) {
  const m = /^#\/filters\/([^/?]+)\/(\d+)(?:\?(.*))?$/.exec(hash || '');
  if (!m) return null;
  const params = new URLSearchParams(m[3] || '');
  const steps = Number.parseInt(params.get('steps') || '', 10);
  return { layer: decodeURIComponent(m[1]), index: Number(m[2]), steps: Number.isFinite(steps) ? steps : null };
}

function unitHash(layer, index) {
  return `#/filters/${encodeURIComponent(layer)}/${index}`;
}

/** GETs a picture that may need a job: at once if cached, else follows the job (polling) and asks again. */
async function fetchUnitPicture(url, onProgress, generation) {
  for (let attempt = 0; attempt < 3; attempt += 1) {
    const response = await request(withoutWaiting(url));
    if (response.status === 200) return response;
    let job = await response.json();
    while (!['done', 'failed', 'cancelled'].includes(job.state)) {
      onProgress(job);
      await sleep(POLL_INTERVAL_MS);
      if (generation !== unitPage.generation) throw new ApiError(null, 'retired', 'no longer shown');
      job = await (await request(`/jobs/${encodeURIComponent(job.id)}`)).json();
    }
    if (job.state !== 'done') throw new ApiError(null, `job_${job.state}`, job.error || `the job ${job.state}`);
  }
  throw new ApiError(null, 'no_result', 'the server kept restarting this job; try again');
}

function progressText(job) {
  if (job.state === 'queued') return job.queue_position ? `queued, ${job.queue_position} ahead` : 'queued, next in line';
  return job.steps ? `${job.kind === 'dataset_index' ? 'image' : 'step'} ${job.step} of ${job.steps}` : 'starting…';
}

/** One figure of the page: an image that loads from `load`, a caption, an error line. */
function unitFigure(id, title, note) {
  return el('figure', { class: 'unit-figure', id, dataset: { state: 'idle' } },
    el('div', { class: 'picture' },
      el('img', { alt: title, dataset: { loaded: 'false' }, hidden: true }),
      el('p', { class: 'placeholder' }, note || '')),
    el('figcaption', {}, el('strong', {}, title), el('span', { class: 'status' })),
    el('p', { class: 'error', role: 'alert', hidden: true }));
}

async function fillFigure(id, load, generation) {
  const figure = document.getElementById(id);
  if (!figure) return;
  const img = figure.querySelector('img');
  const status = figure.querySelector('.status');
  const error = figure.querySelector('.error');
  const placeholder = figure.querySelector('.placeholder');
  error.hidden = true;
  figure.dataset.state = 'loading';
  status.textContent = ' · asking the server…';
  const started = performance.now();
  try {
    const response = await load((job) => { status.textContent = ` · ${progressText(job)}`; });
    const blob = await response.blob();
    if (generation !== unitPage.generation) return;
    await showBlobImage(img, blob);
    placeholder.hidden = true;
    const seconds = (performance.now() - started) / 1000;
    const cached = response.headers.get('X-Cache') === 'hit';
    status.textContent = cached ? ' · from the cache' : ` · ${seconds < 1 ? 'under 1' : seconds.toFixed(0)} s`;
    figure.dataset.state = 'done';
  } catch (err) {
    if (generation !== unitPage.generation || (err instanceof ApiError && err.code === 'retired')) return;
    figure.dataset.state = 'failed';
    status.textContent = '';
    error.textContent = describeError(err);
    error.hidden = false;
  }
}

function layerInfo(name) {
  return state.model && state.model.layers.find((l) => l.name === name || l.path === name);
}

/** The model's output layer (flat, one unit per class), for the class visualisation. */
function outputLayer() {
  const layers = state.model ? state.model.layers : [];
  return layers.length ? layers[layers.length - 1] : null;
}

function buildUnitPanel(route) {
  const layer = layerInfo(route.layer);
  const filters = layer ? layer.filters : null;
  const nav = el('nav', { class: 'unit-nav' },
    el('a', { href: '#', class: 'back' }, '← Gallery'),
    route.index > 0 ? el('a', { href: unitHash(route.layer, route.index - 1), class: 'prev' }, `← filter ${route.index - 1}`) : null,
    filters && route.index + 1 < filters ? el('a', { href: unitHash(route.layer, route.index + 1), class: 'next' }, `filter ${route.index + 1} →`) : null);
  const classes = state.model ? state.model.classes : 0;
  const classInput = el('input', { id: 'unit-class', type: 'number', min: '0', max: String(Math.max(0, classes - 1)), value: String(defaultClass()) });
  return el('section', { id: 'unit-panel', class: 'panel unit-panel', dataset: { layer: route.layer, index: String(route.index) } },
    nav,
    el('h2', {}, `Filter ${route.index} of `, el('code', {}, route.layer)),
    el('p', { class: 'hint' },
      layer ? `${layer.class_name} · output ${formatShape(layer.output_shape)} · ${filters} filters. ` : '',
      'Its feature visualisation by both methods, the photos of the dataset that excite it most ',
      '(each cut to the part of the photo the unit sees, its receptive field), and what it sees in the chosen image.'),
    el('p', { class: 'error', id: 'unit-error', role: 'alert', hidden: true }),
    el('div', { class: 'unit-row' },
      unitFigure('unit-book', "Book's method", 'gradient ascent from grey noise'),
      unitFigure('unit-lucid', 'Lucid', 'regularised: Fourier image, decorrelated colour, jitter'),
      unitFigure('unit-neuron', 'Lucid, centre neuron', 'the single unit at the centre of the feature map'),
      unitFigure('unit-activation', 'On the chosen image', 'choose an image above')),
    el('h3', {}, 'Dataset examples'),
    el('p', { class: 'hint', id: 'unit-examples-note' }, 'The photos of the dataset whose strongest response of this filter is highest, best first.'),
    unitFigure('unit-examples', 'Top dataset examples', 'the dataset index is built on first use'),
    el('ol', { id: 'unit-example-list', class: 'unit-example-list' }),
    el('h3', {}, 'Class visualisation'),
    el('form', { class: 'controls', id: 'unit-class-controls', onsubmit: 'return false' },
      el('label', {}, 'Class ', classInput),
      el('span', { id: 'unit-class-label', class: 'caption' })),
    unitFigure('unit-class-figure', 'Lucid on the class logit', 'the input that raises this class score most'));
}

/** The top prediction of the chosen image when there is one, else the first class. */
function defaultClass() {
  const top = document.querySelector('#predictions li[data-class]');
  return top ? Number(top.dataset.class) : 0;
}

function lucidQuery(route) {
  return route.steps ? `method=lucid&steps=${route.steps}` : 'method=lucid';
}

function showUnitPage(route) {
  unitPage.route = route;
  unitPage.generation += 1;
  const generation = unitPage.generation;
  const old = document.getElementById('unit-panel');
  const panel = buildUnitPanel(route);
  if (old) old.replaceWith(panel);
  else document.querySelector('main').prepend(panel);
  document.body.dataset.view = 'unit';
  panel.scrollIntoView({ block: 'start' });
  const base = `/filters/${encodeURIComponent(route.layer)}/${route.index}`;
  const load = (url) => (progress) => fetchUnitPicture(url, progress, generation);
  fillFigure('unit-book', load(`${base}?method=book`), generation);
  fillFigure('unit-lucid', load(`${base}?${lucidQuery(route)}`), generation);
  fillFigure('unit-neuron', load(`${base}?${lucidQuery(route)}&objective=neuron`), generation);
  fillFigure('unit-examples', load(`${base}/examples`), generation).then(() => listExamples(base, generation));
  loadUnitActivation();
  const classInput = document.getElementById('unit-class');
  classInput.addEventListener('change', () => loadClassVisualisation());
  loadClassVisualisation();
}

/** Names, values and links of the examples (the JSON form; the strip is cached by then). */
async function listExamples(base, generation) {
  try {
    const body = await (await request(`${base}/examples?format=json&wait=0`)).json();
    if (generation !== unitPage.generation || !body.examples) return;
    const list = document.getElementById('unit-example-list');
    list.replaceChildren(...body.examples.map((e) => {
      const box = e.image_box;
      const where = `rows ${box.top}–${box.bottom}, columns ${box.left}–${box.right} of ${e.image.width}×${e.image.height}`;
      const name = e.image.url ? el('a', { href: e.image.url, target: '_blank', rel: 'noopener' }, e.image.name) : e.image.name;
      return el('li', { dataset: { image: e.image.name, value: String(e.value) } }, name, ` — ${e.value.toFixed(2)} at ${where}`);
    }));
    setText('#unit-examples-note', `The ${body.examples.length} photos (of ${body.dataset.images} in the dataset) whose ` +
      'strongest response of this filter is highest, best first, each cut to the receptive field of that response.');
  } catch (err) {
    // The strip's figure already says what went wrong.
  }
}

function loadUnitActivation() {
  const route = unitPage.route;
  if (!route) return;
  const figure = document.getElementById('unit-activation');
  if (!state.image) {
    figure.querySelector('.placeholder').textContent = 'Choose an image above to see where this filter responds.';
    return;
  }
  const generation = unitPage.generation;
  fillFigure('unit-activation',
    () => postImage('/activations', { layer: route.layer, channel: String(route.index) }), generation);
  figure.querySelector('figcaption strong').textContent = `On ${state.image.name}`;
}

function loadClassVisualisation() {
  const output = outputLayer();
  const input = document.getElementById('unit-class');
  if (!output || !input) return;
  const classes = state.model.classes;
  const k = Math.min(Math.max(0, Number.parseInt(input.value, 10) || 0), classes - 1);
  input.value = String(k);
  const label = document.querySelector(`#predictions li[data-class="${k}"]`);
  setText('#unit-class-label', label ? label.dataset.label : `class ${k} of ${classes}`);
  const route = unitPage.route;
  const generation = unitPage.generation;
  const url = `/filters/${encodeURIComponent(output.name)}/${k}?${lucidQuery(route)}`;
  fillFigure('unit-class-figure', (progress) => fetchUnitPicture(url, progress, generation), generation);
}

function hideUnitPage() {
  unitPage.route = null;
  unitPage.generation += 1;
  const panel = document.getElementById('unit-panel');
  if (panel) panel.remove();
  delete document.body.dataset.view;
}

function onUnitRoute() {
  const route = parseUnitHash(location.hash);
  if (!route) {
    if (unitPage.route) hideUnitPage();
    return;
  }
  if (!state.model) return; // shown once the model is loaded (convlens:model)
  showUnitPage(route);
}

/** Each filter card gets links to the unit pages of the filters its grid shows. */
function linkFilterCards() {
  for (const card of document.querySelectorAll('.filter-card')) {
    if (card.querySelector('.unit-links')) continue;
    const layer = layerInfo(card.dataset.layer);
    if (!layer) continue;
    const target = layer.activated_output || layer.name;
    const count = Math.min(galleryCount(), layer.filters || galleryCount());
    const links = el('p', { class: 'unit-links' }, 'Unit pages: ',
      ...Array.from({ length: count }, (_, i) => el('a', { href: unitHash(target, i), title: `filter ${i} of ${target}` }, String(i))));
    card.querySelector('header').after(links);
  }
}

document.addEventListener('convlens:model', () => {
  onUnitRoute();
  linkFilterCards();
  // The cards are rebuilt when the method changes: link the new ones too.
  new MutationObserver(linkFilterCards).observe(document.getElementById('filter-cards'), { childList: true });
});
document.addEventListener('convlens:image', () => {
  if (!unitPage.route) return;
  loadUnitActivation();
});
window.addEventListener('hashchange', onUnitRoute);
