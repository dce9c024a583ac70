// The prices form: the tariff in force (GET /v1/ops/tariff) edited as a whole and sent back
// (PUT /v1/ops/tariff). The server judges every field; each refusal it names in `errors`
// ({field: "packs[1].price", detail}) is shown next to that field.

import { ApiError, get, put } from './api.js';

const form = () => document.querySelector('#tariff-form');
const rows = () => document.querySelector('#pack-rows');

// The error slot of `field`, or of the whole form for ''.
function slot(field) {
  const name = field ? `tariff.${field}` : 'tariff';
  return document.querySelector(`[data-error-for="${CSS.escape(name)}"]`);
}

function clearErrors() {
  for (const el of form().querySelectorAll('[data-error-for^="tariff"]')) el.textContent = '';
  for (const input of form().querySelectorAll('input')) input.removeAttribute('aria-invalid');
}

function packRow(pack, index) {
  const row = document.createElement('div');
  row.className = 'pack-row';
  row.dataset.index = index;
  const input = (name, label, value, mode) => {
    const el = document.createElement('input');
    el.name = name;
    el.value = value ?? '';
    el.setAttribute('aria-label', `pack ${index + 1} ${label}`);
    el.placeholder = label;
    if (mode) el.inputMode = mode;
    return el;
  };
  const remove = document.createElement('button');
  remove.type = 'button';
  remove.className = 'remove-pack';
  remove.textContent = '✕';
  remove.title = `Take pack ${index + 1} off sale`;
  remove.setAttribute('aria-label', remove.title);
  remove.addEventListener('click', () => {
    const packs = readPacks().filter((_, i) => i !== index);
    showPacks(packs);
  });
  row.append(
    input('pack_id', 'id', pack.pack_id),
    input('minutes', 'minutes', pack.minutes, 'numeric'),
    input('price', 'price', pack.price, 'decimal'),
    remove,
  );
  for (const field of ['pack_id', 'minutes', 'price']) {
    const error = document.createElement('p');
    error.className = 'error';
    error.dataset.errorFor = `tariff.packs[${index}].${field}`;
    row.append(error);
  }
  return row;
}

function showPacks(packs) {
  rows().replaceChildren(...packs.map(packRow));
}

function readPacks() {
  return [...rows().querySelectorAll('.pack-row')].map((row) => ({
    pack_id: row.querySelector('[name=pack_id]').value.trim(),
    minutes: row.querySelector('[name=minutes]').value,
    price: row.querySelector('[name=price]').value.trim(),
  }));
}

// Whole numbers go as JSON numbers; anything else as typed, for the server to name.
function whole(text) {
  const trimmed = String(text).trim();
  return /^-?\d+$/.test(trimmed) ? Number(trimmed) : trimmed;
}

function show(tariff) {
  const f = form();
  f.rate_per_minute.value = tariff.rate_per_minute;
  f.vat_rate.value = tariff.vat_rate;
  f.free_trial_minutes.value = tariff.free_trial_minutes;
  f.unlock_minimum.value = tariff.unlock_minimum;
  showPacks(tariff.packs);
  const since = tariff.updated_at ? `set ${tariff.updated_at}` : 'from the server configuration';
  document.querySelector('#tariff-version').textContent =
    `Prices in ${tariff.currency}; version ${tariff.version}, ${since}.`;
}

export async function loadTariff() {
  try {
    show(await get('/v1/ops/tariff'));
  } catch (error) {
    slot('').textContent = error.message;
  }
}

function showRefusal(error) {
  if (!(error instanceof ApiError) || error.errors.length === 0) {
    slot('').textContent = error.message;
    return;
  }
  for (const { field, detail } of error.errors) {
    const target = slot(field) || slot('');
    target.textContent = target.textContent ? `${target.textContent} ${detail}` : detail;
    const match = /^packs\[(\d+)\]\.(\w+)$/.exec(field);
    const input = match
      ? rows().querySelector(`.pack-row[data-index="${match[1]}"] [name=${match[2]}]`)
      : form().elements.namedItem(field);
    input?.setAttribute('aria-invalid', 'true');
  }
  slot('').textContent = 'Nothing was changed: see the fields marked above.';
}

export function wireTariff() {
  document.querySelector('#add-pack').addEventListener('click', () => {
    showPacks([...readPacks(), { pack_id: '', minutes: '', price: '' }]);
  });
  form().addEventListener('submit', async (event) => {
    event.preventDefault();
    const f = form();
    const button = f.querySelector('button[type="submit"]');
    clearErrors();
    button.disabled = true;
    try {
      const saved = await put('/v1/ops/tariff', {
        rate_per_minute: f.rate_per_minute.value.trim(),
        vat_rate: f.vat_rate.value.trim(),
        free_trial_minutes: whole(f.free_trial_minutes.value),
        unlock_minimum: f.unlock_minimum.value.trim(),
        packs: readPacks().map((p) => ({ ...p, minutes: whole(p.minutes) })),
      });
      show(saved);
      f.dataset.saved = String(saved.version);
    } catch (error) {
      showRefusal(error);
      if (!(error instanceof ApiError)) console.error(error);
    } finally {
      button.disabled = false;
    }
  });
}
