// The fleet map: zones, swap tasks, crews and scooters as WebGL layers on MapLibre.

import maplibregl from 'maplibre-gl';
import 'maplibre-gl/dist/maplibre-gl.css';

export const STATE_COLOURS = {
  available: '#1b998b',
  reserved: '#8e6c8a',
  on_trip: '#3f88c5',
  non_operational: '#d7263d',
  non_contactable: '#6c757d',
  removed: '#adb5bd',
};

export function rangeColours(config) {
  return [
    [`below the rental floor (${config.rental_floor_km} km)`, '#d7263d'],
    [`below the swap threshold (${config.swap_threshold_km} km)`, '#f49d37'],
    ['fine', '#1b998b'],
  ];
}

// A scooter's colour: the one data-driven paint property, and no stroke, keep each of
// 100,000 circles cheap to draw.
function colourExpression(mode, config) {
  if (mode === 'state') {
    return ['match', ['get', 'state'], ...Object.entries(STATE_COLOURS).flat(), '#adb5bd'];
  }
  const [low, swap, fine] = rangeColours(config).map(([, colour]) => colour);
  return [
    'case',
    ['<', ['get', 'range_km'], config.rental_floor_km], low,
    ['<', ['get', 'range_km'], config.swap_threshold_km], swap,
    fine,
  ];
}

// The layers scooters are drawn in.
export const SCOOTER_LAYERS = ['scooters'];

const EMPTY = { type: 'FeatureCollection', features: [] };

export function createMap(container, config) {
  const style = {
    version: 8,
    sources: {},
    layers: [{ id: 'background', type: 'background', paint: { 'background-color': '#eef0f3' } }],
  };
  if (config.basemap_url) {
    style.sources.basemap = {
      type: 'raster',
      tiles: [config.basemap_url],
      tileSize: 256,
      attribution: config.basemap_attribution || '',
    };
    style.layers.push({ id: 'basemap', type: 'raster', source: 'basemap' });
  }
  const map = new maplibregl.Map({
    container,
    style,
    center: [2.34, 48.86],
    zoom: 11.3,
    // Keep drawing buffers so screenshots and tests can read the canvas.
    canvasContextAttributes: { preserveDrawingBuffer: true },
  });
  map.addControl(new maplibregl.NavigationControl(), 'top-left');
  return new Promise((resolve) => {
    map.on('load', () => {
      for (const name of ['zones', 'tasks', 'crews']) {
        map.addSource(name, { type: 'geojson', data: EMPTY });
      }
      // Scooters are keyed by their id, so live changes update only what changed.
      map.addSource('scooters', { type: 'geojson', data: EMPTY, promoteId: 'scooter_id' });
      map.addLayer({
        id: 'service-area',
        type: 'fill',
        source: 'zones',
        filter: ['==', ['get', 'kind'], 'service_area'],
        paint: { 'fill-color': '#1b998b', 'fill-opacity': 0.06 },
      });
      map.addLayer({
        id: 'service-area-edge',
        type: 'line',
        source: 'zones',
        filter: ['==', ['get', 'kind'], 'service_area'],
        paint: { 'line-color': '#1b998b', 'line-width': 2 },
      });
      map.addLayer({
        id: 'no-parking',
        type: 'fill',
        source: 'zones',
        filter: ['==', ['get', 'kind'], 'no_parking'],
        paint: { 'fill-color': '#d7263d', 'fill-opacity': 0.25, 'fill-outline-color': '#d7263d' },
      });
      map.addLayer({
        id: 'slow',
        type: 'fill',
        source: 'zones',
        filter: ['==', ['get', 'kind'], 'slow'],
        paint: { 'fill-color': '#f49d37', 'fill-opacity': 0.2, 'fill-outline-color': '#f49d37' },
      });
      map.addLayer({
        id: 'tasks',
        type: 'line',
        source: 'tasks',
        paint: { 'line-color': '#f49d37', 'line-width': 1.5, 'line-dasharray': [2, 2] },
      });
      map.addLayer({
        id: 'scooters',
        type: 'circle',
        source: 'scooters',
        paint: {
          'circle-radius': ['interpolate', ['linear'], ['zoom'], 10, 2, 14, 5, 17, 8],
          'circle-color': colourExpression('range', config),
        },
      });
      map.addLayer({
        id: 'crews',
        type: 'circle',
        source: 'crews',
        paint: {
          'circle-radius': 7,
          'circle-color': ['case', ['get', 'available'], '#3f88c5', '#6c757d'],
          'circle-stroke-width': 2,
          'circle-stroke-color': '#ffffff',
        },
      });
      resolve(map);
    });
  });
}

export function setColourMode(map, mode, config) {
  for (const layer of SCOOTER_LAYERS) {
    map.setPaintProperty(layer, 'circle-color', colourExpression(mode, config));
  }
}
