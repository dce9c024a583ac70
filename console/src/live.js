// Server-sent events read with fetch, so the operator's token goes in a header rather than
// in the URL. Reconnects with a growing delay when the stream drops.

import { token } from './api.js';

export function subscribe(path, onEvent, onStatus) {
  let stopped = false;
  let delay = 500;
  const run = async () => {
    while (!stopped) {
      try {
        const response = await fetch(path, { headers: { Authorization: `Bearer ${token()}` } });
        if (!response.ok || !response.body) throw new Error(`live stream answered ${response.status}`);
        onStatus(true);
        delay = 500;
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const data = block
              .split('\n')
              .filter((line) => line.startsWith('data:'))
              .map((line) => line.slice(5).trimStart())
              .join('\n');
            if (data) onEvent(JSON.parse(data));
          }
        }
      } catch (error) {
        console.warn(error);
      }
      onStatus(false);
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 10000);
    }
  };
  run();
  return () => {
    stopped = true;
  };
}
