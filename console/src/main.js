// The operator console: sign in, then a live map of the fleet with the panels around it.

import './style.css';
import { ApiError, get, getAllPages, post, put, setToken, token } from './api.js';
import { subscribe } from './live.js';
import { SCOOTER_LAYERS, STATE_COLOURS, createMap, rangeColours, setColourMode } from './map.js';
import { loadTariff, wireTariff } from './tariff.js';

const $ = (selector) => document.querySelector(selector);

function showError(name, error) {
  const slot = document.querySelector(`[data-error-for="${name}"]`);
  if (slot) slot.textContent = error ? error.message : '';
}

async function submitting(name, form, action) {
  showError(name, null);
  const button = form.querySelector('button[type="submit"]');
  button.disabled = true;
  try {
    await action();
  } catch (error) {
    showError(name, error);
    if (!(error instanceof ApiError)) console.error(error);
  } finally {
    button.disabled = false;
  }
}

// --- Sign-in -------------------------------------------------------------------------

function showSignIn() {
  $('#console').hidden = true;
  $('#signin').hidden = false;
}

$('#signin-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  submitting('signin', form, async () => {
    const answer = await post('/v1/auth/login', {
      email: form.email.value,
      password: form.password.value,
    });
    if (answer.role !== 'operator') {
      throw new Error('This account is not an operator account.');
    }
    setToken(answer.access_token);
    await start();
  });
});

$('#signout').addEventListener('click', () => {
  setToken(null);
  window.location.reload();
});

// --- The fleet as the map shows it ---------------------------------------------------

const scooters = new Map();
const crews = new Map();
let tasks = [];
let map;
let config;
let renderPending = false;
let lastRender = 0;
// Scooters changed since the last draw, and whether the whole fleet must be sent again.
const changed = new Set();
let reloadAll = true;
// Redraw at most this often, however many changes arrive meanwhile.
const RENDER_EVERY_MS = 100;

// Only what the paint and the click need travels to the map's worker.
function scooterFeature(s) {
  return {
    type: 'Feature',
    id: s.scooter_id,
    geometry: { type: 'Point', coordinates: [s.lon, s.lat] },
    properties: { scooter_id: s.scooter_id, state: s.state, range_km: s.range_km },
  };
}

function render() {
  if (renderPending || !map) return;
  renderPending = true;
  const wait = Math.max(0, lastRender + RENDER_EVERY_MS - performance.now());
  // Straight to the source, not through requestAnimationFrame: with 100,000 scooters a frame
  // takes hundreds of milliseconds in software, and waiting for one would add it to every
  // change's delay.
  setTimeout(draw, wait);
}

function draw() {
  renderPending = false;
  lastRender = performance.now();
  const source = map.getSource('scooters');
  // Past a few thousand changes a fresh copy is cheaper than a diff.
  if (reloadAll || changed.size > 5000) {
    source.setData({ type: 'FeatureCollection', features: [...scooters.values()] });
  } else if (changed.size > 0) {
    // Only what changed crosses to the map's worker, which re-tiles only where it lies.
    source.updateData({ add: [...changed].map((id) => scooters.get(id)) });
  }
  reloadAll = false;
  changed.clear();
  map.getSource('crews').setData({
    type: 'FeatureCollection',
    features: [...crews.values()]
      .filter((c) => c.lat != null && c.lon != null)
      .map((c) => ({ type: 'Feature', geometry: { type: 'Point', coordinates: [c.lon, c.lat] }, properties: c })),
  });
  map.getSource('tasks').setData({
    type: 'FeatureCollection',
    features: tasks
      .filter((t) => t.crew_id && crews.get(t.crew_id)?.lat != null)
      .map((t) => {
        const crew = crews.get(t.crew_id);
        return {
          type: 'Feature',
          geometry: { type: 'LineString', coordinates: [[crew.lon, crew.lat], [t.lon, t.lat]] },
          properties: t,
        };
      }),
  });
}

function applyScooter(s) {
  const before = scooters.get(s.scooter_id);
  const [lon, lat] = before ? before.geometry.coordinates : [];
  scooters.set(s.scooter_id, scooterFeature({ lon, lat, ...(before?.properties || {}), ...s }));
  changed.add(s.scooter_id);
  render();
}

async function loadFleet() {
  const all = await getAllPages('/v1/ops/fleet?limit=5000', 'scooters');
  scooters.clear();
  for (const s of all) scooters.set(s.scooter_id, scooterFeature(s));
  reloadAll = true;
  render();
}

async function loadZones() {
  const zones = await get('/v1/ops/zones');
  map.getSource('zones').setData(zones);
}

async function loadTasksAndCrews() {
  try {
    const answer = await get('/v1/ops/tasks');
    tasks = (answer.tasks || []).filter((t) => ['open', 'assigned', 'accepted'].includes(t.status));
  } catch (error) {
    tasks = [];
  }
  try {
    const answer = await get('/v1/ops/crews');
    crews.clear();
    for (const c of answer.crews || []) crews.set(c.crew_id, c);
  } catch (error) {
    crews.clear();
  }
  render();
}

function onLiveEvent(event) {
  if (event.type === 'scooter') applyScooter(event.scooter);
  else if (event.type === 'resync') loadFleet();
  else if (event.type === 'task' || event.type === 'crew') loadTasksAndCrews();
  else if (event.type === 'zones') loadZones();
}

// --- Panels --------------------------------------------------------------------------

function legend(mode) {
  const entries = mode === 'state' ? Object.entries(STATE_COLOURS) : rangeColours(config);
  $('#legend').replaceChildren(
    ...entries.map(([label, colour]) => {
      const item = document.createElement('li');
      item.innerHTML = `<span class="swatch" style="background:${colour}"></span>`;
      item.append(label.replaceAll('_', ' '));
      return item;
    }),
  );
}

function describe(list, entries) {
  list.replaceChildren(
    ...entries.flatMap(([term, value]) => {
      const dt = document.createElement('dt');
      dt.textContent = term;
      const dd = document.createElement('dd');
      dd.textContent = value ?? '—';
      return [dt, dd];
    }),
  );
}

// `{rides: {count: 3}, fleet: {by_state: {available: 2}}}` → [['rides count', 3], …].
function flatten(value, prefix = '') {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return [[prefix, Array.isArray(value) ? value.join(', ') : value]];
  }
  return Object.entries(value).flatMap(([key, inner]) =>
    flatten(inner, `${prefix} ${key.replaceAll('_', ' ')}`.trim()),
  );
}

async function loadNumbers() {
  try {
    const kpis = await get('/v1/ops/kpis');
    describe($('#numbers'), flatten(kpis));
  } catch (error) {
    const message = error.status === 404 ? 'Not available on this server yet.' : error.message;
    describe($('#numbers'), [['numbers', message]]);
  }
}

async function loadHours() {
  try {
    const hours = await get('/v1/ops/hours');
    const form = $('#hours-form');
    form.timezone.value = hours.timezone;
    form.open.value = hours.open;
    form.close.value = hours.close;
  } catch (error) {
    showError('hours', error);
  }
}

// The click panel: the scooter as the operator endpoint tells it now, with its current ride
// (no rider identity) or its unfinished swap task.
async function showScooter(id) {
  const selected = $('#selected');
  selected.dataset.scooter = id;
  try {
    const s = await get(`/v1/ops/scooters/${encodeURIComponent(id)}`);
    if (selected.dataset.scooter !== id) return;
    const ride = s.current_ride;
    const task = s.open_task;
    describe(selected, [
      ['scooter', s.scooter_id],
      ['state', s.state_reason ? `${s.state} (${s.state_reason.replaceAll('_', ' ')})` : s.state],
      ['range', `${Number(s.range_km).toFixed(1)} km`],
      ['battery', `${s.battery_pct} %`],
      ['last seen', s.last_seen_at],
      ...(ride
        ? [
            ['ride', ride.ride_id],
            ['ride started', ride.started_at],
            ['minutes so far', ride.minutes_so_far],
            ['ride price', `${ride.price_per_minute} ${ride.currency} a minute`],
          ]
        : [['ride', 'none']]),
      ['swap task', task ? `${task.status}${task.crew_id ? ` (crew ${task.crew_id})` : ''}, since ${task.created_at}` : 'none'],
    ]);
  } catch (error) {
    describe(selected, [['scooter', id], ['error', error.message]]);
  }
}

function wirePanels() {
  for (const radio of document.querySelectorAll('input[name="colour"]')) {
    radio.addEventListener('change', () => {
      setColourMode(map, radio.value, config);
      legend(radio.value);
    });
  }
  $('#zones-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    submitting('zones', form, async () => {
      const text = await form.file.files[0].text();
      await put('/v1/ops/zones', text, { raw: true });
      await loadZones();
    });
  });
  $('#hours-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    submitting('hours', form, () =>
      put('/v1/ops/hours', { timezone: form.timezone.value, open: form.open.value, close: form.close.value }),
    );
  });
  map.on('click', 'scooters', (event) => showScooter(event.features[0].properties.scooter_id));
  wireTariff();
  map.on('mouseenter', 'scooters', () => (map.getCanvas().style.cursor = 'pointer'));
  map.on('mouseleave', 'scooters', () => (map.getCanvas().style.cursor = ''));
}

// --- Start ---------------------------------------------------------------------------

async function start() {
  $('#signin').hidden = true;
  $('#console').hidden = false;
  config = await get('/console/config.json');
  map = await createMap($('#map'), config);
  // For the browser test and load checks: the map, the fleet as drawn, and the live entry point.
  window.scootfleetConsole = { map, scooters, applyScooter, scooterLayers: SCOOTER_LAYERS };
  wirePanels();
  legend('range');
  await Promise.all([loadFleet(), loadZones(), loadTasksAndCrews(), loadNumbers(), loadHours(), loadTariff()]);
  subscribe('/v1/ops/live', onLiveEvent, (up) => {
    $('#live-status').classList.toggle('up', up);
    if (up) loadFleet();
  });
  setInterval(loadNumbers, 30000);
  document.body.dataset.ready = 'true';
}

if (token()) start().catch(showSignIn);
else showSignIn();
