// ConvLens gallery — the "Compare methods" panel (loaded after app.js, whose helpers it uses:
// $, el, setText, request, postImage, showError, clearError, showPanelError, describeError,
// isAbort, state).
//
//   POST /heatmap/compare  every chosen method on the chosen image, as a job (202) or,
//                          when computed before, the finished document (200)
//   GET  /jobs/{id}/events the job's progress (Server-Sent Events); /jobs/{id} is the fallback
//   GET  /heatmap/compare/{address}  the finished document: each method's overlay (base64
//                          PNG) and faithfulness scores, and the best method per score
'use strict';

// Everything is local to this function: app.js's functions share the global scope, and a
// second `function followJob` here would replace its own. Only clearComparison is exported.
(() => {
  // The scores a comparison can hold, in table order; `lower` ones are better when smaller.
  const COMPARE_SCORES = [
    { key: 'deletion_auc', metric: 'deletion', label: 'Deletion AUC', lower: true },
    { key: 'insertion_auc', metric: 'insertion', label: 'Insertion AUC', lower: false },
    { key: 'average_drop', metric: 'drop', label: 'Average drop %', lower: true },
    { key: 'increase_in_confidence', metric: 'drop', label: 'Increase in confidence %', lower: false },
    { key: 'road_combined', metric: 'road', label: 'ROAD combined', lower: false },
  ];
  // The server's default method set: methods costing at most this many passes at the layer.
  const COMPARE_DEFAULT_PASSES = 64;

  const compare = {
    jobId: null,       // the running job (cancelled when a new comparison starts)
    events: null,      // its EventSource
    generation: 0,     // bumped per comparison: answers of an older one are dropped
  };

  document.addEventListener('DOMContentLoaded', () => {
    $('#compare-start').addEventListener('click', startComparison);
    $('#compare-cancel').addEventListener('click', cancelComparison);
    loadCompareMethods();
  });

  /** The method checkboxes from /api/model: the cheap ones checked, as the server's default. */
  async function loadCompareMethods() {
    try {
      const model = await (await request('/api/model')).json();
      const boxes = model.cam_method_info.map((m) => el('label', { title: `${m.passes} model passes at the default layer` },
        el('input', { type: 'checkbox', value: m.name, checked: m.passes <= COMPARE_DEFAULT_PASSES }), ` ${m.name}`));
      $('#compare-methods').replaceChildren(...boxes);
    } catch (err) {
      showError('compare-error', err);
    }
  }

  function compareParams() {
    const checked = (selector) => [...document.querySelectorAll(selector)].filter((b) => b.checked).map((b) => b.value);
    const params = {
      methods: checked('#compare-methods input').join(','),
      metrics: checked('#compare-metrics input').join(','),
      alpha: $('#cam-alpha').value,
      colormap: $('#cam-colormap').value,
      layer: $('#cam-layer').value,
    };
    if (state.heatmapClass !== null) params.class = String(state.heatmapClass);
    return params;
  }

  /** Forgets the shown comparison (a new image was chosen); app.js calls it. */
  function clearComparison() {
    stopFollowing();
    compare.generation += 1;
    $('#compare-grid').replaceChildren();
    setText('#compare-info', '');
    setText('#compare-best', '');
    $('#compare-progress-row').hidden = true;
    clearError('compare-error');
  }

  function stopFollowing() {
    if (compare.events) compare.events.close();
    compare.events = null;
    if (compare.jobId) fetch(`/jobs/${compare.jobId}`, { method: 'DELETE' }).catch(() => {});
    compare.jobId = null;
  }

  async function startComparison() {
    if (!state.image) {
      showError('compare-error', 'Choose an image first.');
      return;
    }
    clearComparison();
    const generation = compare.generation;
    const panel = $('#compare-panel');
    panel.dataset.state = 'submitting';
    showProgress(0, 0, 'starting…');
    try {
      const response = await postImage('/heatmap/compare', compareParams());
      if (generation !== compare.generation) return;
      if (response.status === 200) {
        showComparison(await response.json(), generation);
        return;
      }
      const job = await response.json();
      compare.jobId = job.id;
      panel.dataset.state = job.state;
      showProgress(job.step, job.steps, job.state);
      followJob(job, generation);
    } catch (err) {
      if (generation === compare.generation) failComparison(err);
    }
  }

  /** Progress from the job's event stream; on `done` the document is fetched and shown. */
  function followJob(job, generation) {
    const events = new EventSource(`/jobs/${job.id}/events`);
    compare.events = events;
    const current = () => generation === compare.generation;
    events.addEventListener('progress', (e) => {
      if (!current()) return;
      const st = JSON.parse(e.data);
      $('#compare-panel').dataset.state = st.state;
      showProgress(st.step, st.steps, st.state === 'queued' ? `queued (${st.queue_position ?? 0} ahead)` : 'computing');
    });
    events.addEventListener('done', async (e) => {
      events.close();
      if (!current()) return;
      compare.jobId = null;
      const st = JSON.parse(e.data);
      showProgress(st.steps, st.steps, 'done');
      try {
        const doc = await (await request(st.result)).json();
        if (current()) showComparison(doc, generation);
      } catch (err) {
        if (current()) failComparison(err);
      }
    });
    for (const name of ['failed', 'cancelled']) {
      events.addEventListener(name, (e) => {
        events.close();
        if (!current()) return;
        compare.jobId = null;
        const st = JSON.parse(e.data);
        failComparison(`The comparison ${name}: ${st.error || name}`);
      });
    }
    // The stream broke (proxy, server restart): poll the job instead.
    events.onerror = () => {
      if (events.readyState !== EventSource.CLOSED) return;
      if (current() && compare.jobId) pollJob(job.id, generation);
    };
  }

  async function pollJob(id, generation) {
    while (generation === compare.generation) {
      try {
        const st = await (await request(`/jobs/${id}`)).json();
        if (st.state === 'done') {
          const doc = await (await request(st.result)).json();
          if (generation === compare.generation) showComparison(doc, generation);
          return;
        }
        if (st.state === 'failed' || st.state === 'cancelled') throw new Error(`the comparison ${st.state}: ${st.error || ''}`);
        showProgress(st.step, st.steps, st.state);
      } catch (err) {
        if (generation === compare.generation) failComparison(err);
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 1500));
    }
  }

  function cancelComparison() {
    stopFollowing();
    compare.generation += 1;
    $('#compare-panel').dataset.state = 'cancelled';
    showProgress(0, 0, 'cancelled');
  }

  function showProgress(step, steps, text) {
    $('#compare-progress-row').hidden = false;
    const bar = $('#compare-progress');
    bar.max = Math.max(steps, 1);
    bar.value = steps ? step : 0;
    setText('#compare-progress-text', steps ? `${text} · step ${step} of ${steps}` : text);
    $('#compare-cancel').disabled = !['queued', 'running', 'submitting'].includes($('#compare-panel').dataset.state);
  }

  function failComparison(err) {
    $('#compare-panel').dataset.state = 'failed';
    $('#compare-cancel').disabled = true;
    showPanelError('compare-error', err);
  }

  /** The grid: each method's overlay with its scores under it; each score's best value marked. */
  function showComparison(doc, generation) {
    if (generation !== compare.generation) return;
    compare.jobId = null;
    const scores = COMPARE_SCORES.filter((s) => doc.best[s.key]);
    // Every method equal (increase in confidence is often 0 for all): nothing to mark.
    const tied = (s) => doc.methods.length > 1 && doc.best[s.key].length === doc.methods.length;
    const cards = doc.methods.map((m) => {
      const rows = scores.map((s) => {
        const best = !tied(s) && doc.best[s.key].includes(m.method);
        return el('tr', { class: best ? 'best' : '' },
          el('th', {}, s.label + (s.lower ? ' ↓' : ' ↑')),
          el('td', { class: 'num' }, formatScore(m.scores[s.key]) + (best ? ' ★' : '')));
      });
      const img = el('img', { alt: `${m.method} overlay`, width: m.overlay_width, height: m.overlay_height });
      img.src = `data:image/png;base64,${m.overlay_png}`;
      return el('figure', { class: 'compare-card', 'data-method': m.method },
        img,
        el('figcaption', {}, el('strong', {}, m.method),
          ` · ${m.layer === 'input' ? 'input pixels' : m.layer} · ${(m.map_seconds + m.metric_seconds).toFixed(1)} s`),
        el('table', { class: 'compare-scores' }, el('tbody', {}, ...rows)));
    });
    $('#compare-grid').replaceChildren(...cards);
    const label = doc.label || `class ${doc.class}`;
    setText('#compare-info', `Explaining “${label}” (class ${doc.class}, ${doc.score_kind}) · ${doc.methods.length} methods`
      + ` · ${doc.seconds.toFixed(1)} s on the server`);
    setText('#compare-best', 'Best: ' + scores.map((s) => `${s.label} → ${tied(s) ? 'a tie' : doc.best[s.key].join(', ')}`).join(' · '));
    $('#compare-panel').dataset.state = 'done';
    $('#compare-cancel').disabled = true;
  }

  function formatScore(v) {
    return typeof v === 'number' ? v.toFixed(4) : '–';
  }

  window.clearComparison = clearComparison;
})();
