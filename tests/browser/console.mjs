// Drives the operator console in headless Chromium: sign in, see the seeded fleet drawn,
// move a scooter with a telemetry point, see its marker move, click a scooter and read its
// details and the ride of a scooter on a trip, edit the prices (one refused field shown next
// to it, then saved), see a refused form explain why next to it, save a screenshot.
//
// Run by tests/browser.rs, which starts the server, seeds the fleet and passes:
//   SCOOTFLEET_URL, SCOOTFLEET_OPERATOR_EMAIL, SCOOTFLEET_OPERATOR_PASSWORD,
//   SCOOTFLEET_DEVICES (JSON: [{scooter_id, device_token, lat, lon}]),
//   SCOOTFLEET_RIDE (JSON: {scooter_id, ride_id, lat, lon}, a scooter on a ride), SCOOTFLEET_SCREENSHOT.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chromium } from 'playwright-core';

const base = process.env.SCOOTFLEET_URL;
const devices = JSON.parse(process.env.SCOOTFLEET_DEVICES || '[]');
const riding = JSON.parse(process.env.SCOOTFLEET_RIDE || 'null');
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

// Clicks where the scooter at (lon, lat) is drawn.
async function clickScooter(page, { lon, lat }) {
  const at = await page.evaluate(({ lon, lat }) => {
    const map = window.scootfleetConsole.map;
    const box = map.getContainer().getBoundingClientRect();
    const point = map.project([lon, lat]);
    return { x: box.left + point.x, y: box.top + point.y };
  }, { lon, lat });
  await page.mouse.click(at.x, at.y);
}

function errorFor(page, field) {
  return page.waitForFunction(
    (name) => document.querySelector(`[data-error-for="${name}"]`)?.textContent.trim().length > 0,
    field,
    { timeout: 5000 },
  );
}

function renderedScooters(page) {
  return page.evaluate(() => {
    const map = window.scootfleetConsole?.map;
    if (!map || !map.getLayer('scooters')) return [];
    return map
      .queryRenderedFeatures({ layers: window.scootfleetConsole.scooterLayers })
      .map((f) => ({
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
        return map && map.queryRenderedFeatures({ layers: window.scootfleetConsole.scooterLayers }).length >= n;
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
        const f = map
          .queryRenderedFeatures({ layers: window.scootfleetConsole.scooterLayers })
          .find((x) => x.properties.scooter_id === id);
        return f && Math.abs(f.geometry.coordinates[1] - lat) < 1e-4 && Math.abs(f.geometry.coordinates[0] - lon) < 1e-4;
      },
      { id: mover.scooter_id, ...target },
      { timeout: 5000 },
    );
    // Clicking a scooter shows what it is.
    const clicked = devices[1];
    await clickScooter(page, clicked);
    await page.waitForFunction(
      (id) => document.querySelector('#selected')?.textContent.includes(id),
      clicked.scooter_id,
      { timeout: 5000 },
    );
    const selected = await page.textContent('#selected');
    for (const term of ['state', 'range', 'last seen']) {
      assert.ok(selected.includes(term), `the selected scooter shows its ${term}: ${selected}`);
    }

    // A scooter on a ride shows its ride: id, start, minutes so far.
    assert.ok(riding, 'a scooter on a ride');
    await clickScooter(page, riding);
    await page.waitForFunction(
      (rideId) => document.querySelector('#selected')?.textContent.includes(rideId),
      riding.ride_id,
      { timeout: 5000 },
    );
    const ridePanel = await page.textContent('#selected');
    for (const term of [riding.scooter_id, 'on_trip', 'ride started', 'minutes so far']) {
      assert.ok(ridePanel.includes(term), `the ride panel shows ${term}: ${ridePanel}`);
    }

    // The prices form: a wrong pack price is refused next to that pack's price field…
    await page.waitForSelector('#pack-rows .pack-row');
    await page.fill('#tariff-form input[name=rate_per_minute]', '0.32');
    await page.fill('#pack-rows .pack-row[data-index="1"] input[name=price]', '22,00');
    await page.click('#tariff-form button[type=submit]');
    await errorFor(page, 'tariff.packs[1].price');
    assert.equal(
      await page.getAttribute('#pack-rows .pack-row[data-index="1"] input[name=price]', 'aria-invalid'),
      'true',
    );
    assert.equal(await page.textContent('[data-error-for="tariff.rate_per_minute"]'), '');
    // … then, corrected, with a new pack added and the first removed, it is saved.
    await page.fill('#pack-rows .pack-row[data-index="1"] input[name=price]', '22.00');
    await page.click('#add-pack');
    await page.fill('#pack-rows .pack-row[data-index="3"] input[name=pack_id]', 'pack_400');
    await page.fill('#pack-rows .pack-row[data-index="3"] input[name=minutes]', '400');
    await page.fill('#pack-rows .pack-row[data-index="3"] input[name=price]', '75.00');
    await page.click('#pack-rows .pack-row[data-index="0"] .remove-pack');
    await page.click('#tariff-form button[type=submit]');
    await page.waitForSelector('#tariff-form[data-saved="1"]', { timeout: 5000 });
    assert.equal(await page.textContent('[data-error-for="tariff.packs[1].price"]'), '');
    const packs = await (await fetch(`${base}/v1/packs`)).json();
    assert.deepEqual(packs.packs.map((p) => p.pack_id), ['pack_100', 'pack_200', 'pack_400']);
    const plans = await (await fetch(`${base}/gbfs/v3/system_pricing_plans.json`)).json();
    assert.equal(plans.data.plans[0].per_min_pricing[0].rate, 0.32);

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
