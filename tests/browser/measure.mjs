// Measures how long a live change takes to show on the console's map with a large fleet:
// from the telemetry POST to the moved marker being drawn at its new place, in headless
// Chromium with software rendering (SwiftShader), as the browser test runs.
//
// Run by the ignored test `a_live_move_shows_quickly_with_a_large_fleet` in tests/browser.rs,
// which seeds the fleet and passes SCOOTFLEET_URL, SCOOTFLEET_OPERATOR_EMAIL,
// SCOOTFLEET_OPERATOR_PASSWORD, SCOOTFLEET_DEVICES (the scooters to move),
// SCOOTFLEET_FLEET_SIZE and SCOOTFLEET_MOVES.
import { chromium } from 'playwright-core';

const base = process.env.SCOOTFLEET_URL;
const devices = JSON.parse(process.env.SCOOTFLEET_DEVICES || '[]');
const fleetSize = Number(process.env.SCOOTFLEET_FLEET_SIZE || 0);
const moves = Number(process.env.SCOOTFLEET_MOVES || 5);
const chromiumPath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

async function sendPoint(device, lat, lon) {
  const response = await fetch(`${base}/v1/telemetry`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${device.device_token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({
      points: [{ lat, lon, range_km: 42.5, battery_pct: 80, recorded_at: new Date().toISOString() }],
    }),
  });
  if (response.status !== 202) throw new Error(`telemetry answered ${response.status}`);
}

// The live stream as a second console would read it, to split each delay into the server's
// part (telemetry in, event out) and the browser's (event in, marker drawn).
const heard = new Map();
async function listen() {
  const login = await fetch(`${base}/v1/auth/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({
      email: process.env.SCOOTFLEET_OPERATOR_EMAIL,
      password: process.env.SCOOTFLEET_OPERATOR_PASSWORD,
    }),
  });
  const { access_token: token } = await login.json();
  const response = await fetch(`${base}/v1/ops/live`, { headers: { Authorization: `Bearer ${token}` } });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      for (const match of value.matchAll(/"scooter_id":"([^"]+)"/g)) heard.set(match[1], performance.now());
    }
  })().catch(() => {});
  return reader;
}
const stream = await listen();

const browser = await chromium.launch({
  executablePath: chromiumPath,
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--use-angle=swiftshader', '--enable-unsafe-swiftshader',
  ],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const started = performance.now();
  await page.goto(`${base}/console/`);
  await page.fill('input[name=email]', process.env.SCOOTFLEET_OPERATOR_EMAIL);
  await page.fill('input[name=password]', process.env.SCOOTFLEET_OPERATOR_PASSWORD);
  await page.click('#signin-form button[type=submit]');
  await page.waitForSelector('body[data-ready=true]', { timeout: 120000 });
  await page.waitForSelector('#live-status.up', { timeout: 60000 });
  // The whole fleet is in the map's source and drawn once.
  await page.waitForFunction(
    (n) => window.scootfleetConsole?.scooters.size >= n && window.scootfleetConsole.map.loaded(),
    fleetSize,
    { timeout: 120000, polling: 200 },
  );
  const loaded = performance.now() - started;
  // What one frame of the whole fleet costs to draw here: the floor of any delay.
  const frameMs = await page.evaluate(
    () =>
      new Promise((resolve) => {
        const map = window.scootfleetConsole.map;
        let frames = 0;
        const begin = performance.now();
        const onRender = () => {
          frames += 1;
          if (performance.now() - begin < 3000) map.triggerRepaint();
          else {
            map.off('render', onRender);
            resolve((performance.now() - begin) / frames);
          }
        };
        map.on('render', onRender);
        map.triggerRepaint();
      }),
  );
  // The first query of rendered features decodes the tiles' features (the first click on the
  // map pays it too): timed apart, so the moves measure what a live change costs.
  const firstQueryMs = await page.evaluate(() => {
    const map = window.scootfleetConsole.map;
    const begin = performance.now();
    map.queryRenderedFeatures([[0, 0], [10, 10]], { layers: window.scootfleetConsole.scooterLayers });
    return performance.now() - begin;
  });
  const times = [];
  const server = [];
  for (let i = 0; i < moves; i++) {
    const device = devices[i % devices.length];
    const step = 0.001 * (Math.floor(i / devices.length) + 1);
    const target = { lat: device.lat + step, lon: device.lon + step };
    const t0 = performance.now();
    await sendPoint(device, target.lat, target.lon);
    await page.waitForFunction(
      ({ id, lat, lon }) => {
        const map = window.scootfleetConsole.map;
        const p = map.project([lon, lat]);
        const box = [[p.x - 3, p.y - 3], [p.x + 3, p.y + 3]];
        return map
          .queryRenderedFeatures(box, { layers: window.scootfleetConsole.scooterLayers })
          .some((f) => f.properties.scooter_id === id);
      },
      { id: device.scooter_id, ...target },
      { timeout: 30000, polling: 'raf' },
    );
    times.push(performance.now() - t0);
    server.push((heard.get(device.scooter_id) ?? NaN) - t0);
    // Let the map settle between moves, as changes arrive spread out in real life.
    await page.waitForTimeout(1000);
  }
  const sorted = [...times].sort((a, b) => a - b);
  console.log(
    JSON.stringify({
      fleet: fleetSize,
      loaded_s: +(loaded / 1000).toFixed(1),
      frame_ms: Math.round(frameMs),
      first_query_ms: Math.round(firstQueryMs),
      move_to_drawn_ms: times.map((t) => Math.round(t)),
      move_to_event_ms: server.map((t) => Math.round(t)),
      best_ms: Math.round(sorted[0]),
      median_ms: Math.round(sorted[Math.floor(sorted.length / 2)]),
      worst_ms: Math.round(sorted[sorted.length - 1]),
    }),
  );
} finally {
  await browser.close();
  await stream.cancel();
}
