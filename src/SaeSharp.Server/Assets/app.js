// SaeSharp feature browser: the live pages (text search, steering). Jobs are submitted to the JSON API and followed
// by long-polling /api/jobs/{id}; results are drawn with DOM calls (textContent only, never markup from data).
'use strict';

function el(tag, attrs, children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'text') e.textContent = v;
    else if (k === 'className') e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children || []) e.append(c);
  return e;
}

// Whitespace a reader can see, as the reports show it.
function visible(token) {
  if (token.length === 0) return '∅';
  return token.replace(/\n/g, '↵').replace(/\t/g, '→').replace(/\r/g, '');
}

function fmt(v, digits) {
  return v === null || v === undefined ? '—' : Number(v).toFixed(digits === undefined ? 3 : digits);
}

// A token shaded by an activation relative to max (the report's colours), the value on hover.
function tokenSpan(text, act, max, special) {
  const s = el('span', { className: special ? 'tok special' : 'tok', title: text + ': ' + fmt(act, 4), text: visible(text) });
  if (act > 0) s.style.background = 'rgba(255,110,0,' + (0.12 + 0.88 * Math.min(1, act / (max > 0 ? max : 1))).toFixed(3) + ')';
  return s;
}

async function postJob(url, body) {
  const r = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  const data = await r.json();
  if (!r.ok) throw new Error(data.error || ('HTTP ' + r.status));
  return data;
}

// Follows a job until it finishes, calling onProgress with each state; returns the finished job.
async function followJob(job, onProgress) {
  while (true) {
    onProgress(job);
    if (job.state === 'done' || job.state === 'failed' || job.state === 'timed_out') return job;
    const r = await fetch(job.url + '?since=' + job.version + '&wait_ms=2000');
    const data = await r.json();
    if (!r.ok) throw new Error(data.error || ('HTTP ' + r.status));
    job = data;
  }
}

function showProgress(status, job) {
  status.textContent = '';
  const label = job.state === 'queued' ? 'queued (' + job.waiting + ' waiting)' : job.message;
  const bar = el('span', { className: 'progress' }, [el('span')]);
  bar.firstChild.style.width = Math.round(100 * (job.progress || 0)) + '%';
  status.append(document.createTextNode(label), bar);
}

async function runJob(form, url, body, render) {
  const status = document.getElementById('status');
  const error = document.getElementById('error');
  const button = form.querySelector('button[type=submit]');
  error.textContent = '';
  button.disabled = true;
  try {
    const job = await followJob(await postJob(url, body), j => showProgress(status, j));
    if (job.state !== 'done') throw new Error(job.error || job.message);
    status.textContent = 'done';
    render(job.result);
  } catch (e) {
    status.textContent = '';
    error.textContent = e.message;
  } finally {
    button.disabled = false;
  }
}

function initSearch(form) {
  const store = form.dataset.store;
  const tokensBox = document.getElementById('search-tokens');
  const results = document.getElementById('search-results');
  function showTokens(result, i) {
    const f = result.features[i];
    tokensBox.textContent = '';
    const max = Math.max(...f.token_activations, 0);
    const line = el('div', { className: 'ex' }, [el('span', { className: 'latent', text: 'latent ' + f.feature })]);
    result.tokens.forEach((t, p) => line.append(tokenSpan(t.text, f.token_activations[p], max, t.special)));
    tokensBox.append(line);
    results.querySelectorAll('tr.selected').forEach(r => r.classList.remove('selected'));
    const row = results.querySelector('tr[data-index="' + i + '"]');
    if (row) row.classList.add('selected');
  }
  function render(result) {
    results.textContent = '';
    tokensBox.textContent = '';
    if (result.features.length === 0) {
      results.append(el('p', { className: 'note', text: 'no latent fires on this text' }));
      return;
    }
    const head = el('tr', {}, ['feature', 'mean activation', 'normalized', 'decoder norm', 'max on a token', 'top output tokens'].map(h => el('th', { text: h })));
    const table = el('table', { id: 'search-table' }, [head]);
    result.features.forEach((f, i) => {
      const link = el('a', { href: f.url, text: String(f.feature) });
      const row = el('tr', { 'data-index': String(i) }, [
        el('td', {}, [link]), el('td', { text: fmt(f.activation, 4) }), el('td', { text: fmt(f.normalized_activation, 4) }),
        el('td', { text: fmt(f.decoder_weight_norm, 4) }), el('td', { text: fmt(Math.max(...f.token_activations, 0), 4) }),
        el('td', { className: 'l', text: f.top_tokens.map(t => '"' + t.text + '"').join(' ') })]);
      row.addEventListener('click', ev => { if (ev.target.tagName !== 'A') showTokens(result, i); });
      table.append(row);
    });
    results.append(el('p', { className: 'note', text: result.tokens.length + ' tokens, mean over ' + result.counted_positions + '; click a row to shade the text by that latent' }), table);
    showTokens(result, 0);
  }
  form.addEventListener('submit', ev => {
    ev.preventDefault();
    const body = { text: form.elements.text.value, top_k: Number(form.elements.top_k.value) };
    runJob(form, '/api/stores/' + store + '/search', body, render);
  });
}

function initSteer(form) {
  const store = form.dataset.store;
  const results = document.getElementById('steer-results');
  const direction = document.getElementById('steer-direction');
  function render(result) {
    results.textContent = '';
    direction.textContent = '';
    if (result.direction_tokens.length > 0)
      direction.append(el('p', { text: "direction's top tokens: " + result.direction_tokens.map(t => '"' + t.text + '" ' + fmt(t.logit, 2)).join(', ') }));
    for (const run of result.runs) {
      const text = el('div', { className: 'text' });
      if (run.text.startsWith(result.prompt)) text.append(el('span', { className: 'prompt', text: result.prompt }), document.createTextNode(run.text.slice(result.prompt.length)));
      else text.textContent = run.text;
      const stats = run.strength === 0 || run.mean_kl === null ? 'the unsteered model'
        : 'KL per generated token: mean ' + fmt(run.mean_kl) + ', max ' + fmt(run.max_kl) + ' nats';
      results.append(el('div', { className: 'run', 'data-label': run.label }, [el('h3', { text: run.label + ' (strength ' + run.strength + ')' }), text, el('p', { className: 'note', text: stats })]));
    }
  }
  form.addEventListener('submit', ev => {
    ev.preventDefault();
    const f = form.elements;
    const body = {
      prompt: f.prompt.value, features: f.features.value, strengths: f.strengths.value, mode: f.mode.value, positions: f.positions.value,
      max_tokens: Number(f.max_tokens.value), temperature: Number(f.temperature.value), seed: Number(f.seed.value),
    };
    runJob(form, '/api/stores/' + store + '/steer', body, render);
  });
}

document.addEventListener('DOMContentLoaded', () => {
  const search = document.getElementById('search-form');
  if (search) initSearch(search);
  const steer = document.getElementById('steer-form');
  if (steer) initSteer(steer);
});
