// Drives the operator console in headless Chromium: sign in, see the seeded fleet drawn,
// move a scooter with a telemetry point, see its marker move, click a scooter and read its
// details, see a refused form explain why next to it, save a screenshot.
//
// Run by tests/browser.rs, which starts the server, seeds the fleet and passes:
//   SCOOTFLEET_URL, SCOOTFLEET_OPERATOR_EMAIL, SCOOTFLEET_OPERATOR_PASSWORD,
//   SCOOTFLEET_DEVICES (JSON: [{scooter_id, device_token, lat, lon}]), SCOOTFLEET_SCREENSHOT.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chromium } from 'playwright-core';

const base = process.env.SCOOTFLEET_URL;
const devices = JSON.parse(process.env.SCOOTFLEET_DEVICES || '[]');
const chromiumPath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

async function sendPoint(device, lat, lon) {
  const response = await fetch(`${base}/v1/telemetry`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${device.device_token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({
      points: [{ lat, lon, range_km: 42.5, battery_pct: 80, recorded_at: new Date().toISOString() }],
    }),
  });
  assert.equal(response.status, 202, await response.text());
}

function renderedScooters(page) {
  return page.evaluate(() => {
    const map = window.scootfleetConsole?.map;
    if (!map || !map.getLayer('scooters')) return [];
    return map.queryRenderedFeatures({ layers: ['scooters'] }).map((f) => ({
      id: f.properties.scooter_id,
      lon: f.geometry.coordinates[0],
      lat: f.geometry.coordinates[1],
    }));
  });
}

test('the console draws the fleet and follows it live', async () => {
  assert.ok(base, 'SCOOTFLEET_URL is set');
  assert.ok(devices.length > 0, 'a seeded fleet');
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
    const problems = [];
    page.on('pageerror', (error) => problems.push(error.message));
    await page.goto(`${base}/console/`);
    await page.fill('input[name=email]', process.env.SCOOTFLEET_OPERATOR_EMAIL);
    await page.fill('input[name=password]', process.env.SCOOTFLEET_OPERATOR_PASSWORD);
    await page.click('#signin-form button[type=submit]');
    await page.waitForSelector('body[data-ready=true]', { timeout: 20000 });

    // Every seeded scooter is drawn.
    await page.waitForFunction(
      (n) => {
        const map = window.scootfleetConsole?.map;
        return map && map.queryRenderedFeatures({ layers: ['scooters'] }).length >= n;
      },
      devices.length,
      { timeout: 20000 },
    );
    const drawn = await renderedScooters(page);
    for (const device of devices) {
      assert.ok(drawn.some((s) => s.id === device.scooter_id), `${device.scooter_id} is drawn`);
    }

    // Wait for the live stream, then move one scooter about 300 m north-east.
    await page.waitForSelector('#live-status.up', { timeout: 10000 });
    const mover = devices[0];
    const target = { lat: mover.lat + 0.002, lon: mover.lon + 0.003 };
    await sendPoint(mover, target.lat, target.lon);
    await page.waitForFunction(
      ({ id, lat, lon }) => {
        const map = window.scootfleetConsole?.map;
        const f = map.queryRenderedFeatures({ layers: ['scooters'] }).find((x) => x.properties.scooter_id === id);
        return f && Math.abs(f.geometry.coordinates[1] - lat) < 1e-4 && Math.abs(f.geometry.coordinates[0] - lon) < 1e-4;
      },
      { id: mover.scooter_id, ...target },
      { timeout: 5000 },
    );
    // Clicking a scooter shows what it is.
    const clicked = devices[1];
    const at = await page.evaluate(({ lon, lat }) => {
      const map = window.scootfleetConsole.map;
      const box = map.getContainer().getBoundingClientRect();
      const point = map.project([lon, lat]);
      return { x: box.left + point.x, y: box.top + point.y };
    }, clicked);
    await page.mouse.click(at.x, at.y);
    await page.waitForFunction(
      (id) => document.querySelector('#selected')?.textContent.includes(id),
      clicked.scooter_id,
      { timeout: 5000 },
    );
    const selected = await page.textContent('#selected');
    for (const term of ['state', 'range', 'last seen']) {
      assert.ok(selected.includes(term), `the selected scooter shows its ${term}: ${selected}`);
    }

    // A refused form shows the server's reason next to it.
    await page.fill('#hours-form input[name=timezone]', 'Mars/Olympus_Mons');
    await page.click('#hours-form button[type=submit]');
    await page.waitForFunction(
      () => document.querySelector('[data-error-for="hours"]')?.textContent.trim().length > 0,
      null,
      { timeout: 5000 },
    );

    if (process.env.SCOOTFLEET_SCREENSHOT) {
      await page.screenshot({ path: process.env.SCOOTFLEET_SCREENSHOT });
    }
    assert.deepEqual(problems, [], 'no script errors in the page');
  } finally {
    await browser.close();
  }
});
